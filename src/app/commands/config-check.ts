import { ConfigInvalid, loadConfig } from '../../agent/config.js';
import { configPath, createBase, type GlobalOptions } from '../../agent/context.js';
import { ExitCode } from '../../agent/errors.js';

/** `dsvm-agent config check [FILE]`: every problem with its key path, exit 2 when invalid. */
export async function configCheckCommand(g: GlobalOptions, file?: string): Promise<number> {
  const base = createBase(g);
  const target = file ?? configPath(g, base.paths);
  try {
    const cfg = await loadConfig(target);
    const parts = [`domain ${cfg.domain.name}`];
    parts.push(
      cfg.share
        ? `share //${cfg.share.host ?? `${cfg.share.account}.file.${cfg.share.endpointSuffix}`}/${cfg.share.name} (${cfg.share.type}) at ${cfg.share.mountPoint}`
        : 'no share (workspaces are local)',
    );
    process.stdout.write(`${target}: valid (${parts.join('; ')})\n`);
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof ConfigInvalid) {
      process.stderr.write(`${err.message}\n`);
      return ExitCode.usage;
    }
    throw err;
  }
}
