// Preload for test child processes: resolve NAME.localhost to 127.0.0.1 the
// way RFC 6761 says (glibc does not), so a Key Vault fake can be reached as
// https://dsvm.vault.localhost:PORT — the SDK's challenge check needs a host
// name that ends in the challenge resource's domain. Nothing else changes.
import dns from 'node:dns';

const original = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (typeof hostname === 'string' && hostname.endsWith('.localhost')) {
    const cb = typeof options === 'function' ? options : callback;
    const all = typeof options === 'object' && options !== null && options.all;
    process.nextTick(() => (all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)));
    return {};
  }
  return original.call(dns, hostname, options, callback);
};
