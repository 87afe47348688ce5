import { AsyncLocalStorage } from 'node:async_hooks';
import winston from 'winston';
import Transport from 'winston-transport';
import type { Redactor } from './redact.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** The logger every part of the agent receives; each line names its task. */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
  /** A logger whose lines name `task`. */
  child(task: string): Logger;
}

/**
 * The task whose work is running, for lines logged on its behalf by code that
 * holds only the process logger (a task's own code, the command runner).
 * A few per-run caches are keyed by the context object (the resolved storage
 * key, the keytab this process's join just wrote), so a task must get
 * the same context object, not a copy with its own logger: the task's name
 * travels with the async call chain instead.
 */
const taskScope = new AsyncLocalStorage<string>();

/** Run `work` so that its lines, and those of the commands it runs, name `task`. */
export function inTask<T>(task: string, work: () => Promise<T>): Promise<T> {
  return taskScope.run(task, work);
}

/** Loggers whose lines take the running task's name: the process logger and the command runner's. */
const generic = new Set<string | undefined>([undefined, 'run']);
const SCOPE_KEY = 'taskScope';

/** journald reads a leading "<N>" on stderr lines as the syslog priority (sd-daemon(3)). */
const journaldPriority: Record<string, number> = { error: 3, warn: 4, info: 6, debug: 7 };

export interface LoggerOptions {
  level?: LogLevel;
  redactor: Redactor;
  /** Where lines go; default stderr. */
  write?: (line: string) => void;
  /** Prefix lines with journald priorities (default: when stderr is not a TTY). */
  journald?: boolean;
}

class LineTransport extends Transport {
  constructor(private readonly writeLine: (line: string) => void) {
    super();
  }
  override log(info: { [key: symbol]: unknown }, next: () => void): void {
    this.writeLine(String(info[Symbol.for('message')]));
    next();
  }
}

function formatMeta(meta: Record<string, unknown>): string {
  const keys = Object.keys(meta).filter((k) => !['level', 'message', 'task', 'timestamp', SCOPE_KEY].includes(k));
  if (keys.length === 0) return '';
  return ' ' + keys.map((k) => `${k}=${typeof meta[k] === 'string' ? JSON.stringify(meta[k]) : JSON.stringify(meta[k])}`).join(' ');
}

/** Create the process logger: winston to stderr, journald priorities when not on a TTY. */
export function createLogger(opts: LoggerOptions): Logger {
  const journald = opts.journald ?? !process.stderr.isTTY;
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const redactor = opts.redactor;
  const line = winston.format.printf((info) => {
    const { level, message, task, [SCOPE_KEY]: scoped } = info as { level: string; message: unknown; task?: string; taskScope?: string };
    const name = generic.has(task) ? (scoped ?? task ?? 'agent') : task;
    const body = `${name}: ${String(message)}${formatMeta(info as Record<string, unknown>)}`;
    const text = redactor.redact(body);
    if (journald) return `<${journaldPriority[level] ?? 6}>${text}`;
    const time = new Date().toISOString().slice(11, 23);
    return `${time} ${level.toUpperCase().padEnd(5)} ${text}`;
  });
  const base = winston.createLogger({
    level: opts.level ?? 'info',
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: line,
    transports: [new LineTransport(write)],
  });
  // The task is read when the line is logged: winston may format it later, outside the task's async context.
  const withScope = (meta: Record<string, unknown> | undefined): Record<string, unknown> => {
    const scoped = taskScope.getStore();
    return scoped === undefined ? (meta ?? {}) : { ...meta, [SCOPE_KEY]: scoped };
  };
  const wrap = (w: winston.Logger): Logger => ({
    error: (m, meta) => void w.error(m, withScope(meta)),
    warn: (m, meta) => void w.warn(m, withScope(meta)),
    info: (m, meta) => void w.info(m, withScope(meta)),
    debug: (m, meta) => void w.debug(m, withScope(meta)),
    child: (task) => wrap(w.child({ task })),
  });
  return wrap(base);
}
