/**
 * Local line editing for the terminal (the agent has no PTY yet): echo,
 * cursor movement, backspace/delete, history on the arrow keys, Ctrl-A/E/U/K/L/C.
 * Keystrokes go in as xterm's `onData` strings; output goes to `write`;
 * a finished line goes to `onLine`.
 */

const HISTORY_MAX = 500;

export interface LineEditorHooks {
  write(s: string): void;
  onLine(line: string): void;
  onInterrupt(): void;
  onClear(): void;
}

// One key per match: escape sequences first, then any single character.
const TOKEN = /\x1b\[[0-9;]*[A-Za-z~]|\x1bO[A-Za-z]|\x1b.|[\s\S]/gu;

export class LineEditor {
  prompt = "";
  buffer = "";
  cursor = 0;
  readonly history: string[] = [];
  private historyIndex = 0;
  private draft = "";
  private readonly hooks: LineEditorHooks;
  /** False while a line runs: keys then wait in `pending` (type-ahead, pastes). */
  private active = false;
  private pending = "";

  constructor(hooks: LineEditorHooks) {
    this.hooks = hooks;
  }

  /** Shows the prompt and accepts input (then replays type-ahead). */
  start(prompt: string): void {
    this.prompt = prompt;
    this.buffer = "";
    this.cursor = 0;
    this.historyIndex = this.history.length;
    this.active = true;
    this.hooks.write(prompt);
    const rest = this.pending;
    this.pending = "";
    if (rest) this.feed(rest);
  }

  /** True while the prompt is showing. */
  get accepting(): boolean {
    return this.active;
  }

  /** Takes keystrokes. While a line runs, Ctrl-C interrupts and the rest waits. */
  feed(data: string): void {
    if (!this.active) {
      if (data.includes("\x03")) {
        this.pending = "";
        this.hooks.onInterrupt();
      } else this.pending += data;
      return;
    }
    const tokens = data.match(TOKEN) ?? [];
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (!this.active) {
        this.pending += tokens.slice(i).join("");
        return;
      }
      this.key(t);
    }
  }

  private key(t: string): void {
    switch (t) {
      case "\r":
      case "\n":
        this.submit();
        return;
      case "\x7f":
      case "\b":
        if (this.cursor > 0) {
          this.buffer = this.buffer.slice(0, this.cursor - 1) + this.buffer.slice(this.cursor);
          this.cursor--;
          this.redraw();
        }
        return;
      case "\x1b[3~":
        if (this.cursor < this.buffer.length) {
          this.buffer = this.buffer.slice(0, this.cursor) + this.buffer.slice(this.cursor + 1);
          this.redraw();
        }
        return;
      case "\x1b[D":
      case "\x02":
        if (this.cursor > 0) {
          this.cursor--;
          this.hooks.write("\x1b[D");
        }
        return;
      case "\x1b[C":
      case "\x06":
        if (this.cursor < this.buffer.length) {
          this.cursor++;
          this.hooks.write("\x1b[C");
        }
        return;
      case "\x1b[H":
      case "\x1bOH":
      case "\x01":
        this.cursor = 0;
        this.redraw();
        return;
      case "\x1b[F":
      case "\x1bOF":
      case "\x05":
        this.cursor = this.buffer.length;
        this.redraw();
        return;
      case "\x1b[A":
      case "\x10":
        this.recall(-1);
        return;
      case "\x1b[B":
      case "\x0e":
        this.recall(1);
        return;
      case "\x15":
        this.buffer = this.buffer.slice(this.cursor);
        this.cursor = 0;
        this.redraw();
        return;
      case "\x0b":
        this.buffer = this.buffer.slice(0, this.cursor);
        this.redraw();
        return;
      case "\x0c":
        this.hooks.onClear();
        this.redraw();
        return;
      case "\x03":
        this.hooks.write("^C\r\n");
        this.buffer = "";
        this.cursor = 0;
        this.historyIndex = this.history.length;
        this.hooks.write(this.prompt);
        return;
      case "\t":
        this.insert("  ");
        return;
      default:
        if (t.startsWith("\x1b") || t < " ") return; // other control keys: ignored
        this.insert(t);
        return;
    }
  }

  private insert(s: string): void {
    const atEnd = this.cursor === this.buffer.length;
    this.buffer = this.buffer.slice(0, this.cursor) + s + this.buffer.slice(this.cursor);
    this.cursor += s.length;
    if (atEnd) this.hooks.write(s);
    else this.redraw();
  }

  private recall(step: number): void {
    if (this.history.length === 0) return;
    if (this.historyIndex === this.history.length) this.draft = this.buffer;
    const next = Math.min(this.history.length, Math.max(0, this.historyIndex + step));
    if (next === this.historyIndex) return;
    this.historyIndex = next;
    this.buffer = next === this.history.length ? this.draft : this.history[next]!;
    this.cursor = this.buffer.length;
    this.redraw();
  }

  private redraw(): void {
    const back = this.buffer.length - this.cursor;
    this.hooks.write(`\r\x1b[2K${this.prompt}${this.buffer}${back > 0 ? `\x1b[${back}D` : ""}`);
  }

  private submit(): void {
    const line = this.buffer;
    this.hooks.write("\r\n");
    this.buffer = "";
    this.cursor = 0;
    if (line.trim() === "") {
      this.hooks.write(this.prompt);
      return;
    }
    if (this.history[this.history.length - 1] !== line) {
      this.history.push(line);
      if (this.history.length > HISTORY_MAX) this.history.shift();
    }
    this.historyIndex = this.history.length;
    this.active = false;
    this.hooks.onLine(line);
  }
}
