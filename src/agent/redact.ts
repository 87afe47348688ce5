/**
 * The set of secret values this process has seen. Secrets must never reach
 * output in the first place; this is the second line of defence: the logger
 * and the command runner replace any registered value before writing.
 */
export class Redactor {
  private readonly secrets = new Set<string>();

  /** Remember a secret value (values shorter than 4 characters are too common to redact safely). */
  add(value: string): void {
    if (value.length >= 4) this.secrets.add(value);
    // A secret with a trailing newline read from a file is also registered trimmed.
    const trimmed = value.trim();
    if (trimmed !== value && trimmed.length >= 4) this.secrets.add(trimmed);
  }

  /** Replace every known secret in text by "[redacted]". */
  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) {
      if (out.includes(s)) out = out.split(s).join('[redacted]');
    }
    return out;
  }

  get size(): number {
    return this.secrets.size;
  }
}
