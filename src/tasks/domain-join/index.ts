import { notImplemented } from '../../agent/errors.js';
import type { Task } from '../../agent/task.js';

/** join the AD domain and configure sssd, Kerberos, sudo, sshd and home creation. */
export const domainJoinTask: Task = {
  id: 'domain-join',
  description: 'join the AD domain and configure sssd, Kerberos, sudo, sshd and home creation',
  async check() {
    throw notImplemented('domain-join: not available in this build yet');
  },
  async apply() {
    throw notImplemented('domain-join: not available in this build yet');
  },
};
