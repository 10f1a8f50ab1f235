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
    string Method { get; }

    RequestId RequestId { get; }

    /// <summary>The exchange's one timer (<see cref="ExchangeTimers"/>), also cancelled by the client leaving and the end of a shutdown's drain.</summary>
    CancellationTokenSource Timeouts { get; }

    /// <summary>The client went away.</summary>
    bool Gone { get; }

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

    /// <summary>Some of the request body left for a backend: the request can no longer go elsewhere.</summary>
    bool BodyStarted { get; }

    /// <summary>Reading the client's request body failed (not sending it).</summary>
    Exception? ClientReadError { get; }

    /// <summary>Builds the request for <paramref name="backend"/>, for <see cref="SendAsync"/> (before the attempt counts as started).</summary>
    void Prepare(in BackendEntry backend);

    /// <summary>One attempt: sends the request and waits for the response head; throws when the attempt failed.</summary>
    ValueTask SendAsync(CancellationTokenSource timeouts);

    /// <summary>A failed attempt: closes what it opened and frees its connection slot.</summary>
    void Abandon();

    int Status { get; }

    StreamKind Kind { get; }

    /// <summary>The response may carry an OpenAI-style <c>usage</c> object (JSON or an event stream).</summary>
    bool CarriesUsage { get; }

    /// <summary>Relays the response head and body to the client, the body chunk by chunk under <see cref="ExchangeTimers"/>.</summary>
    ValueTask<RelayResult> RelayAsync(UsageScanner? usage, CancellationTokenSource timeouts);

    /// <summary>The exchange is over: the upstream response is closed (or, cleanly ended, pooled) and its slot freed.</summary>
    void End();
}

/// <summary>How a response relay ended; <paramref name="Started"/>: bytes of it reached the client; <paramref name="FirstChunkAt"/>: timestamp of the first body chunk (0: none).</summary>
internal readonly record struct RelayResult(StreamCopyOutcome Outcome, bool Started, long FirstChunkAt, Exception? Exception);
