// The HA loop's lease keepalives over one gRPC stream kept open, instead of etcd3's
// `lease.keepaliveOnce()`, which opens a LeaseKeepAlive stream, sends one request and closes the
// stream on every call: 0.88 ms of CPU per keepalive against 0.14 ms on an open stream
// (docs/performance.md, "Idle footprint").
//
// The split-brain guard is unchanged: the caller takes the send time just before `once()` and
// arms its fence from it. Every answer on the stream belongs to the oldest request without one,
// so requests go one at a time, and any failure (an error, the stream ending, no answer within
// the deadline) closes the stream: a late answer can never be taken for a later request's. The
// next keepalive opens a new stream (on any etcd member the pool picks).
import { EtcdLeaseInvalidError, GRPCDeadlineExceededError, castGrpcError, type Etcd3, type IDuplexStream, type ILeaseKeepAliveRequest, type ILeaseKeepAliveResponse } from 'etcd3';

type Stream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

interface Waiter {
  /** The stream the request was written to: another stream's events never touch it. */
  stream: Stream;
  resolve(res: ILeaseKeepAliveResponse): void;
  reject(err: Error): void;
}

export class KeepaliveStream {
  readonly #client: Etcd3;
  #stream: Stream | null = null;
  #waiter: Waiter | null = null;
  /** The call in flight: the next one waits for it (the loop and a long action may both renew). */
  #queue: Promise<unknown> = Promise.resolve();
  /** Streams opened so far (tests: a healthy stream is reused). */
  opened = 0;

  constructor(client: Etcd3) {
    this.#client = client;
  }

  /**
   * One keepalive of lease `id`, answered within `timeoutMs` (opening the stream included), or an
   * error: GRPCDeadlineExceededError when no answer came in time, EtcdLeaseInvalidError when etcd
   * no longer knows the lease (TTL 0), etcd3's cast of the gRPC error otherwise.
   */
  once(id: string, timeoutMs: number): Promise<ILeaseKeepAliveResponse> {
    const run = this.#queue.then(() => this.#once(id, timeoutMs));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #once(id: string, timeoutMs: number): Promise<ILeaseKeepAliveResponse> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      // The caller's budget (retry_timeout): the loop must renew before its fence deadline.
      timer = setTimeout(() => reject(new GRPCDeadlineExceededError('keepalive: etcd did not answer in time')), timeoutMs);
    });
    try {
      const stream = await Promise.race([this.#open(), late]);
      const answer = new Promise<ILeaseKeepAliveResponse>((resolve, reject) => { this.#waiter = { stream, resolve, reject }; });
      stream.write({ ID: id });
      const res = await Promise.race([answer, late]);
      if (res.TTL === '0') throw new EtcdLeaseInvalidError(id);
      return res;
    } catch (err) {
      if (!(err instanceof EtcdLeaseInvalidError)) this.close();
      throw err;
    } finally {
      clearTimeout(timer);
      this.#waiter = null;
    }
  }

  async #open(): Promise<Stream> {
    if (this.#stream !== null) return this.#stream;
    // No deadline on the stream itself (the client's defaultCallOptions give streams none): each
    // request has its own, above.
    const stream = await this.#client.leaseClient.leaseKeepAlive();
    this.opened++;
    const waiter = (): Waiter | null => (this.#waiter?.stream === stream ? this.#waiter : null);
    const fail = (err: Error) => {
      if (this.#stream === stream) this.#stream = null;
      waiter()?.reject(err);
    };
    stream.on('data', (res) => waiter()?.resolve(res));
    stream.on('error', (err) => fail(castGrpcError(err)));
    stream.on('end', () => fail(new Error('keepalive: etcd closed the stream')));
    this.#stream = stream;
    return stream;
  }

  /** Close the stream (a failure, or the agent stopping); the next keepalive opens another. */
  close(): void {
    const s = this.#stream;
    this.#stream = null;
    if (s === null) return;
    s.on('error', () => undefined); // the cancel reports itself as an error: nobody waits for it
    s.cancel();
  }
}
