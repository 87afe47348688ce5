#!/usr/bin/env node
// A DNS forwarder for lab tests: what a VNet's resolver is to a VM whose DNS
// is not the domain controller (Azure DNS forwarding the AD zone, a DNS
// private resolver). It relays each UDP datagram and each TCP stream on
// LISTEN:53 to UPSTREAM:53 unchanged, so a client can resolve the domain
// while the DC's own port 53 is closed to it.
//
// Usage: dns-forwarder.mjs LISTEN_IP UPSTREAM_IP PID_FILE
// Runs until killed (the test stops it by the pid it writes; `lab down` ends
// every process of the lab's namespaces anyway).
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import net from 'node:net';

const [listen, upstream, pidFile] = process.argv.slice(2);
if (!listen || !upstream || !pidFile) {
  console.error('usage: dns-forwarder.mjs LISTEN_IP UPSTREAM_IP PID_FILE');
  process.exit(2);
}

const udp = dgram.createSocket('udp4');
udp.on('message', (query, from) => {
  // One upstream socket per query: answers go back to the asker they belong to.
  const out = dgram.createSocket('udp4');
  const timer = setTimeout(() => out.close(), 10_000);
  out.on('message', (answer) => {
    clearTimeout(timer);
    udp.send(answer, from.port, from.address);
    out.close();
  });
  out.on('error', () => out.close());
  out.send(query, 53, upstream);
});

const tcp = net.createServer((client) => {
  const server = net.connect({ host: upstream, port: 53 });
  client.pipe(server).pipe(client);
  const end = () => {
    client.destroy();
    server.destroy();
  };
  client.on('error', end);
  server.on('error', end);
});

let ready = 0;
const started = () => {
  if (++ready === 2) writeFileSync(pidFile, `${process.pid}\n`);
};
udp.bind(53, listen, started);
tcp.listen(53, listen, started);
