// Pure: the last lines the server wrote to stderr, so that a failed start can say why
// ("codenook: error: unrecognized arguments: …") instead of quoting the language client's
// "Pending response rejected since connection got disposed". No `vscode` import.

export class StderrTail {
  private lines: string[] = [];

  constructor(private readonly keep = 20) {}

  push(line: string): void {
    const text = line.replace(/\s+$/, '');
    if (text === '') {
      return;
    }
    this.lines.push(text);
    if (this.lines.length > this.keep) {
      this.lines.splice(0, this.lines.length - this.keep);
    }
  }

  clear(): void {
    this.lines = [];
  }

  /** The most telling line: the last one that looks like an error, else the last one. */
  reason(): string | undefined {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      if (/error|exception|not found|no such|cannot|unrecognized|usage:/i.test(this.lines[i])) {
        return this.lines[i];
      }
    }
    return this.lines[this.lines.length - 1];
  }
}

/** The start-up failure message: what ran, and the best reason we have. */
export function startFailureMessage(command: string, clientError: string, stderrReason: string | undefined): string {
  const why = stderrReason
    ? `it said: ${stderrReason}`
    : /connection got disposed|connection.*closed|EPIPE|exited/i.test(clientError)
      ? 'it exited before answering initialize'
      : clientError;
  return (
    `the server exited or failed during start-up (${command}): ${why}. ` +
    'The output channel "codenook" has its full log.'
  );
}
