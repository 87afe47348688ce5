import type { Capability } from '../../agent/capability.js';
import { LoginService } from './service.js';

/**
 * Workspaces: each user's folder on the share and the link in their $HOME,
 * made at every login (docs/login.md). Nothing at first boot, no check of
 * its own (the share's checks say whether logins can reach it), nothing to
 * undo (the folders are the users' data). The daemon serves the logins
 * through one LoginService it owns; the PAM hook and `dsvm-agent login`
 * reach the same work through workspace/request.ts without loading this list.
 */
export const workspace: Capability = {
  id: 'workspace',
  logins: (ctx) => new LoginService(ctx),
};
