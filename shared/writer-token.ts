/**
 * The token a writer (a sidecar, the recorder) presents to the gateway as `Authorization: Bearer`,
 * read from the file the kubelet keeps fresh: a projected service-account token is rewritten at
 * 80 % of its life (https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken),
 * so the file is read again once a minute, far inside the 12 minutes a 3600 s token has left then.
 * A failed read keeps the last token read (the kubelet swaps the file atomically; a read error is
 * transient or the volume is gone, and an old token is still better than none until it expires).
 */
import { fs } from './node-builtins.ts';

export const REREAD_MS = 60_000;

export interface WriterTokenOptions {
  readonly rereadMs?: number;
  readonly now?: () => number;
  readonly readFile?: (path: string) => string;
  /**
   * Called when reads start failing (not again until one succeeds): without a token the gateway
   * refuses every write (401), so this deserves a warning; `haveOlderToken` says whether the last
   * token read is still being sent.
   */
  readonly onReadError?: (error: Error, haveOlderToken: boolean) => void;
}

export class WriterToken {
  readonly #path: string;
  readonly #rereadMs: number;
  readonly #now: () => number;
  readonly #read: (path: string) => string;
  readonly #onReadError: (error: Error, haveOlderToken: boolean) => void;
  #token: string | undefined;
  #readAt = -Infinity;
  #failing = false;

  constructor(path: string, opts: WriterTokenOptions = {}) {
    this.#path = path;
    this.#rereadMs = opts.rereadMs ?? REREAD_MS;
    this.#now = opts.now ?? Date.now;
    this.#read = opts.readFile ?? ((p) => fs.readFileSync(p, 'utf8'));
    this.#onReadError = opts.onReadError ?? (() => {});
  }

  /** `Bearer <token>`, or undefined while no token could be read yet. */
  authorization(): string | undefined {
    const now = this.#now();
    if (now - this.#readAt >= this.#rereadMs) {
      this.#readAt = now;
      try {
        const token = this.#read(this.#path).trim();
        if (token === '') throw new Error(`token file ${this.#path} is empty`);
        this.#token = token;
        this.#failing = false;
      } catch (cause) {
        if (!this.#failing) this.#onReadError(new Error(`cannot read the token file ${this.#path}`, { cause }), this.#token !== undefined);
        this.#failing = true;
      }
    }
    return this.#token === undefined ? undefined : `Bearer ${this.#token}`;
  }
}
