using System.IO.Pipelines;
using EdgeProxy.Balancing;
using EdgeProxy.Observability;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The client side of an exchange, for <see cref="HttpForwarder"/>'s one exchange core: Kestrel's
/// <c>HttpContext</c> (general path) or the raw HTTP/1.1 connection (fast path). Implemented by
/// structs, so the core is compiled once per side with direct calls, as Kestrel's
/// <c>HttpParser&lt;THandler&gt;</c> is.
/// </summary>
internal interface IExchangeClient
{
    /// <summary>Bytes toward the next request (the fast path's connection pipe; the general path has its request already).</summary>
    ValueTask<ReadResult> ReadAsync();

    /// <summary>Takes the next request from what was read: <see cref="RequestStep.Ready"/>, or why not.</summary>
    RequestStep TakeRequest(in ReadResult read);

    /// <summary>The request is over; true when the client may send another (a keep-alive connection on the fast path).</summary>
    bool EndRequest(bool keepAlive);

    ModelRoute Route { get; }

    /// <summary>The key of the request's affinity (client IP, header or conversation); null when the model has none.</summary>
    ulong? AffinityKey { get; }

    /// <summary>
    /// When the affinity key is a conversation's (prefix affinity read it from the body): the key of
    /// its shared opening (the system prompt), which places it while it is new; null for a key of
    /// the client's address or a header.
    /// </summary>
    ulong? OpeningKey { get; }

    /// <summary>When the request began (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    long Started { get; }

    string Method { get; }

    /// <summary>A POST to an inference endpoint (<see cref="InferenceCalls"/>); asked only after a failed attempt.</summary>
    bool IsInferenceCall { get; }

    RequestId RequestId { get; }

    /// <summary>The exchange's one timer (<see cref="ExchangeTimers"/>), also cancelled by the client leaving and the end of a shutdown's drain.</summary>
    CancellationTokenSource Timeouts { get; }

    /// <summary>The client went away.</summary>
    bool Gone { get; }

    /// <summary>
    /// A fresh <see cref="Timeouts"/> after its timer fired (a cancelled source cannot be reset), for
    /// a retry on another backend; false when the client left or the drain ended meanwhile.
    /// </summary>
    bool RenewTimeouts();

    /// <summary>A usage scanner for this response (the fast path reuses one per connection).</summary>
    UsageScanner Usage();

    /// <summary>An error answer in the gateway's JSON shape, while no response byte reached the client; false when the client is gone.</summary>
    ValueTask<bool> WriteErrorAsync(int status, ForwarderError error);

    /// <summary>The last frame of a response that already started (best effort: the client may be gone too).</summary>
    ValueTask WriteFrameAsync(byte[] frame);

    /// <summary>Ends the response abortively, so the client cannot take a truncated body for a whole one.</summary>
    void Abort();
}

/// <summary>
/// The upstream side of an exchange: SocketsHttpHandler (general path) or the raw HTTP/1.1 client
/// (<see cref="Http1Connection"/>, fast path). It sends one attempt and relays its response to the
/// client it was made for.
/// </summary>
internal interface IUpstreamExchange
{
    bool HasBody { get; }

    /// <summary>
    /// The request can be sent whole again, to another backend: it has no body, or its body went out
    /// whole and was kept (RETRY_BUFFER_KB; the fast path keeps a body that came with the head).
    /// </summary>
    bool CanResend { get; }

    /// <summary>Some of the request body left for a backend: the request can no longer go elsewhere.</summary>
    bool BodyStarted { get; }

    /// <summary>Reading the client's request body failed (not sending it).</summary>
    Exception? ClientReadError { get; }

    /// <summary>Builds the request for <paramref name="backend"/>, for <see cref="SendAsync"/> (before the attempt counts as started).</summary>
    void Prepare(in BackendEntry backend);

    /// <summary>
    /// Sends the request (on <paramref name="fresh"/>: on a new connection); throws when the attempt
    /// failed. SocketsHttpHandler also waits for the response head here.
    /// </summary>
    ValueTask SendAsync(CancellationTokenSource timeouts, bool fresh);

    /// <summary>The response head is complete (interim 1xx heads skipped); else <see cref="ReceiveAsync"/> more.</summary>
    bool TakeResponseHead();

    /// <summary>Reads more of the response head (the raw client's socket read, awaited by the core itself).</summary>
    ValueTask<int> ReceiveAsync(CancellationTokenSource timeouts);

    /// <summary>A read failing now may only mean a reused connection the backend had closed, unanswered.</summary>
    bool MayBeStale { get; }

    /// <summary>Takes <paramref name="count"/> bytes just read; false when the connection was stale (send again on a fresh one); throws when the response ended early.</summary>
    bool Received(int count);

    /// <summary>A failed attempt: closes what it opened and frees its connection slot.</summary>
    void Abandon();

    int Status { get; }

    /// <summary>The response's Retry-After value (read only for a 429 or 503 the core may retry elsewhere).</summary>
    string? RetryAfter { get; }

    StreamKind Kind { get; }

    /// <summary>The response may carry an OpenAI-style <c>usage</c> object (JSON or an event stream).</summary>
    bool CarriesUsage { get; }

    /// <summary>
    /// Relays the response head and body to the client, the body chunk by chunk under
    /// <see cref="ExchangeTimers"/>; the head says how many backends were tried when more than one.
    /// </summary>
    ValueTask<RelayResult> RelayAsync(UsageScanner? usage, CancellationTokenSource timeouts, int attempts);

    /// <summary>The exchange is over: the upstream response is closed (or, cleanly ended, pooled) and its slot freed.</summary>
    void End();
}

/// <summary>What <see cref="IExchangeClient.TakeRequest"/> found.</summary>
internal enum RequestStep
{
    /// <summary>A request to forward.</summary>
    Ready,

    /// <summary>Not a whole request yet: read more.</summary>
    NeedBytes,

    /// <summary>The client closed, or the server's shutdown found the connection idle: end it.</summary>
    Close,

    /// <summary>Not a request this side serves: the connection goes to Kestrel with the request unread.</summary>
    HandOver,

    /// <summary>A request that came as the server began shutting down: the error answer, then close.</summary>
    Refuse,
}

/// <summary>How a response relay ended; <paramref name="Started"/>: bytes of it reached the client; <paramref name="FirstChunkAt"/>: timestamp of the first body chunk (0: none).</summary>
internal readonly record struct RelayResult(StreamCopyOutcome Outcome, bool Started, long FirstChunkAt, Exception? Exception);
