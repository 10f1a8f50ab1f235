using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Observability;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The general path's sides of the exchange (<see cref="ServeAsync"/>): the client is Kestrel's
/// <see cref="HttpContext"/>, the upstream the one shared SocketsHttpHandler.
/// </summary>
internal sealed partial class HttpForwarder
{
    private static readonly UriCreationOptions RawUri = new() { DangerousDisablePathAndQueryCanonicalization = true };

    public async Task ForwardAsync(HttpContext context, ModelRoute route, string remainder, string requestId)
    {
        var started = time.GetTimestamp();
        var clientIp = ClientAddress.Resolve(context, settings, out var peerTrusted);
        // The request's timers, the client leaving, and the end of a shutdown's drain all cancel the exchange.
        using var timeouts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, drain.Deadline);
        var exchange = new ContextExchange(context, route, remainder, requestId, clientIp, peerTrusted, timeouts, settings, time) { Started = started, DrainDeadline = drain.Deadline };
        ulong? conversation = null;
        if (RequestHasBody(context))
        {
            var body = context.Request.Body;
            if (route.AffinityConfig.Kind == AffinityKind.Prefix)
            {
                PeekedBody peeked;
                ulong opening;
                (conversation, opening, peeked) = await PeekedBody.ReadAsync(body, settings, context.RequestAborted).ConfigureAwait(false);
                exchange.OpeningKey = conversation is null ? null : opening;
                context.Response.RegisterForDispose(peeked);
                body = peeked;
            }
            exchange.Content = new StreamingRequestContent(body, context.Request.ContentLength, timeouts, settings);
            context.Response.RegisterForDispose(exchange.Content);   // its kept body goes back to the pool
        }
        exchange.AffinityKey = conversation ?? AffinityKey(route, context, clientIp);
        try
        {
            await ServeAsync(new ContextClient(exchange), new HandlerUpstream(this, exchange)).ConfigureAwait(false);
        }
        finally
        {
            exchange.Timeouts.Dispose();   // a renewed source (the first one is the using's)
        }
    }

    /// <summary>
    /// One general-path exchange's state. It also sees each response chunk after it was written
    /// (<see cref="ICopyObserver"/>): the first chunk ends the first-byte phase, every chunk re-arms
    /// the idle timer, and token usage is read on the way past.
    /// </summary>
    private sealed class ContextExchange(HttpContext context, ModelRoute route, string remainder, string requestId, IPAddress clientIp, bool peerTrusted,
        CancellationTokenSource timeouts, GatewaySettings settings, TimeProvider time) : ICopyObserver
    {
        public HttpContext Context { get; } = context;
        public ModelRoute Route { get; } = route;
        public ulong? AffinityKey { get; set; }
        public ulong? OpeningKey { get; set; }
        public long Started { get; init; }
        public string Remainder { get; } = remainder;
        public string RequestId { get; } = requestId;
        public IPAddress ClientIp { get; } = clientIp;
        public bool PeerTrusted { get; } = peerTrusted;
        private readonly CancellationTokenSource _firstTimeouts = timeouts;

        public CancellationTokenSource Timeouts { get; private set; } = timeouts;

        /// <summary>A new exchange timer after the old one fired, linked as the first (the client leaving, the drain's end).</summary>
        public bool RenewTimeouts(CancellationToken drainDeadline)
        {
            if (Context.RequestAborted.IsCancellationRequested || drainDeadline.IsCancellationRequested)
            {
                return false;
            }
            if (!ReferenceEquals(Timeouts, _firstTimeouts))
            {
                Timeouts.Dispose();
            }
            Timeouts = CancellationTokenSource.CreateLinkedTokenSource(Context.RequestAborted, drainDeadline);
            return true;
        }
        public StreamingRequestContent? Content { get; set; }
        public HttpRequestMessage? Request { get; set; }
        public HttpResponseMessage? Response { get; set; }

        /// <summary>The end of a shutdown's drain (a renewed timer is linked to it too).</summary>
        public CancellationToken DrainDeadline;

        /// <summary>Backends this request was sent to (the response head says so when more than one).</summary>
        public int Attempts;

        /// <summary>The MAX_CONNECTIONS slot held for the attempt in progress.</summary>
        public SemaphoreSlim? Budget { get; set; }
        public StreamKind Kind { get; set; }
        public UsageScanner? Usage { get; set; }
        public long FirstChunkAt { get; private set; }

        public void OnChunk(ReadOnlySpan<byte> chunk)
        {
            if (FirstChunkAt == 0)
            {
                FirstChunkAt = time.GetTimestamp();
            }
            ExchangeTimers.AwaitNextChunk(Timeouts, settings);
            Usage?.Observe(chunk);
        }
    }

    private readonly struct ContextClient(ContextExchange x) : IExchangeClient
    {
        /// <summary>The request came with the context: one exchange, no reading.</summary>
        public ValueTask<ReadResult> ReadAsync() => default;

        public RequestStep TakeRequest(in ReadResult read) => RequestStep.Ready;

        public bool EndRequest(bool keepAlive) => false;

        public ModelRoute Route => x.Route;

        public ulong? AffinityKey => x.AffinityKey;

        public ulong? OpeningKey => x.OpeningKey;

        public long Started => x.Started;

        public string Method => x.Context.Request.Method;

        public bool IsInferenceCall => InferenceCalls.Is(x.Context.Request.Method, x.Remainder);

        public RequestId RequestId => x.RequestId;

        public CancellationTokenSource Timeouts => x.Timeouts;

        public bool Gone => x.Context.RequestAborted.IsCancellationRequested;

        public bool RenewTimeouts() => x.RenewTimeouts(x.DrainDeadline);

        public UsageScanner Usage() => new();

        public ValueTask<bool> WriteErrorAsync(int status, ForwarderError error) => WriteContextErrorAsync(x.Context, status, error);

        public ValueTask WriteFrameAsync(byte[] frame) => WriteContextFrameAsync(x.Context, frame);

        public void Abort() => x.Context.Abort();
    }

    private readonly struct HandlerUpstream(HttpForwarder forwarder, ContextExchange x) : IUpstreamExchange
    {
        public bool HasBody => x.Content is not null;

        public bool CanResend => x.Content is not { Replayable: false };

        public bool BodyStarted => x.Content is { Started: true };

        public Exception? ClientReadError => x.Content?.ClientReadError;

        public int Status => (int)x.Response!.StatusCode;

        public string? RetryAfter => x.Response!.Headers.TryGetValues("Retry-After", out var values) ? values.FirstOrDefault() : null;

        public StreamKind Kind => x.Kind;

        public bool CarriesUsage => CarriesUsageOf(x.Response!, x.Kind);

        public void Prepare(in BackendEntry backend)
            => x.Request = CreateRequest(x.Context, backend, x.Remainder, x.RequestId, x.ClientIp, x.PeerTrusted, x.Content);

        /// <summary>SocketsHttpHandler re-sends on a stale pooled connection itself, and returns with the response head.</summary>
        public ValueTask SendAsync(CancellationTokenSource timeouts, bool fresh) => forwarder.SendThroughHandlerAsync(x, timeouts);

        public bool TakeResponseHead() => true;

        public ValueTask<int> ReceiveAsync(CancellationTokenSource timeouts) => throw new UnreachableException();

        public bool MayBeStale => false;

        public bool Received(int count) => true;

        public void Abandon()
        {
            x.Response?.Dispose();
            x.Response = null;
            x.Budget?.Release();
            x.Budget = null;
        }

        public ValueTask<RelayResult> RelayAsync(UsageScanner? usage, CancellationTokenSource timeouts, int attempts)
        {
            x.Usage = usage;
            x.Attempts = attempts;
            return RelayResponseAsync(x);
        }

        /// <summary>
        /// Disposing a response that was not read to the end aborts the upstream connection: that is
        /// how a client disconnect stops the backend generating.
        /// </summary>
        public void End()
        {
            x.Timeouts.Cancel();
            Abandon();
        }
    }

    private async ValueTask SendThroughHandlerAsync(ContextExchange x, CancellationTokenSource timeouts)
    {
        var uri = x.Request!.RequestUri!;
        var slots = _budgets.For(uri.IdnHost, uri.Port);
        await ConnectionBudgets.TakeAsync(slots, timeouts.Token).ConfigureAwait(false);
        x.Budget = slots;
        var response = x.Response = await invoker.SendAsync(x.Request, timeouts.Token).ConfigureAwait(false);
        if (InvalidHead(response) is { } invalid)
        {
            // A head that is not valid RFC 9110/9112 is unusable: the upstream connection is closed
            // and the client gets a 502 (RFC 9112 §6.3 (5)), as on the fast path, whose parser
            // refuses the same heads. SocketsHttpHandler hands such a response over, and Kestrel
            // would refuse some of its fields with a 500.
            throw new HttpRequestException(HttpRequestError.InvalidResponse, "Invalid upstream response: " + invalid + ".");
        }
        x.Kind = StreamKindOf(response);
    }

    /// <summary>Status and headers, then the body chunk by chunk: the first chunk under the first-byte timer, every later one under the idle timer.</summary>
    private static async ValueTask<RelayResult> RelayResponseAsync(ContextExchange x)
    {
        var upstream = x.Response!;
        var context = x.Context;
        var response = context.Response;
        try
        {
            response.StatusCode = (int)upstream.StatusCode;
            CopyResponseHeaders(upstream, response);
            if (x.Attempts > 1)
            {
                response.Headers[AttemptsHeader] = x.Attempts.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            if (x.Kind != StreamKind.None)
            {
                // Event streams: no buffering anywhere, including an nginx in front of us.
                response.Headers["X-Accel-Buffering"] = "no";
                response.Headers.CacheControl = "no-cache";
                context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
                await response.StartAsync(context.RequestAborted).ConfigureAwait(false);
            }
            var body = await upstream.Content.ReadAsStreamAsync(x.Timeouts.Token).ConfigureAwait(false);
            var copy = await StreamCopier.CopyAsync(body, response.Body, flush: false, x, x.Timeouts.Token, context.RequestAborted,
                expectedLength: upstream.Headers.TransferEncodingChunked == true ? null : upstream.Content.Headers.ContentLength).ConfigureAwait(false);
            if (copy.Outcome != StreamCopyOutcome.Completed && !response.HasStarted)
            {
                // Nothing reached the client: the error answer replaces the backend's head.
                response.Clear();
                response.Headers[RequestIds.HeaderName] = x.RequestId;
            }
            return new RelayResult(copy.Outcome, response.HasStarted, x.FirstChunkAt, copy.Exception);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client went away while the head was being sent.
            return new RelayResult(StreamCopyOutcome.WriteFailed, true, x.FirstChunkAt, ex);
        }
    }

    private static async ValueTask<bool> WriteContextErrorAsync(HttpContext context, int status, ForwarderError error)
    {
        try
        {
            await ErrorResponses.WriteAsync(context, status, ForwarderErrors.Code(error), ForwarderErrors.Message(error), ForwarderErrors.RetryAfterSeconds(error)).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            return false;
        }
    }

    private static async ValueTask WriteContextFrameAsync(HttpContext context, byte[] frame)
    {
        try
        {
            await context.Response.Body.WriteAsync(frame, context.RequestAborted).ConfigureAwait(false);
            await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The client is gone too; nothing more to tell it.
        }
    }

    /// <summary>
    /// The affinity key from the request's head: a header's value, else the client's address (also
    /// for prefix affinity when the body holds no conversation, see <see cref="PeekedBody"/>).
    /// </summary>
    internal static ulong? AffinityKey(ModelRoute route, HttpContext context, IPAddress clientIp)
    {
        switch (route.AffinityConfig.Kind)
        {
            case AffinityKind.None:
                return null;
            case AffinityKind.Header:
                var value = context.Request.Headers[route.AffinityConfig.HeaderName!];
                if (value.Count > 0 && !string.IsNullOrEmpty(value[0]))
                {
                    return StableHash.Hash(value[0].AsSpan());
                }
                // No session header: fall back to the client's address.
                return StableHash.Hash(clientIp);
            default:
                return StableHash.Hash(clientIp);
        }
    }

    private static bool RequestHasBody(HttpContext context)
    {
        var detection = context.Features.Get<IHttpRequestBodyDetectionFeature>();
        return detection?.CanHaveBody ?? (context.Request.ContentLength > 0);
    }

    internal static HttpRequestMessage CreateRequest(
        HttpContext context, BackendEntry backend, string remainder, string requestId, IPAddress clientIp, bool peerTrusted, StreamingRequestContent? content)
    {
        var incoming = context.Request;
        var target = remainder.Length == 0 ? backend.BaseUrl + "/"
            : remainder[0] == '?' ? string.Concat(backend.BaseUrl, "/", remainder)
            : backend.BaseUrl + remainder;
        var request = new HttpRequestMessage(MethodOf(incoming.Method), new Uri(target, in RawUri))
        {
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
            Content = content,
        };
        content?.ApplyLength();

        // Request headers minus hop-by-hop (and the ones named in Connection: Kestrel's value, with
        // the lines as received, which Kestrel may have collapsed) and the ones we replace.
        var connectionValue = HeaderRules.ConnectionNamingFields(Join(incoming.Headers.Connection, ConnectionFieldCapture.Raw));
        foreach (var header in incoming.Headers)
        {
            var name = header.Key;
            if (name.Length == 0 || name[0] == ':' || HeaderRules.RequestReplaced.Contains(name))
            {
                continue;
            }
            if (HeaderRules.HopByHop.Contains(name))
            {
                // RFC 9110 §10.1.4: TE is hop-by-hop, but "trailers" tells the backend the client can take them.
                if (name.Equals("TE", StringComparison.OrdinalIgnoreCase) && HasToken(header.Value, "trailers"))
                {
                    request.Headers.TryAddWithoutValidation("TE", "trailers");
                }
                continue;
            }
            if (connectionValue is not null && HeaderRules.NamedByConnection(connectionValue, name))
            {
                continue;
            }
            if (name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase))
            {
                if (content is not null)
                {
                    AddHeader(content.Headers, name, header.Value);
                }
                continue;
            }
            AddHeader(request.Headers, name, header.Value);
        }

        // Forwarding headers: recomputed, trusting the client's values only from a trusted proxy.
        var peerAddress = ClientAddress.Peer(context);
        var peer = peerAddress.ToString();
        var forwardedFor = incoming.Headers["X-Forwarded-For"];
        request.Headers.TryAddWithoutValidation("X-Forwarded-For",
            peerTrusted && forwardedFor.Count > 0 ? forwardedFor.ToString() + ", " + peer : peer);
        var forwardedProto = incoming.Headers["X-Forwarded-Proto"];
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", peerTrusted && forwardedProto.Count > 0 ? forwardedProto.ToString() : incoming.Scheme);
        var forwardedHost = incoming.Headers["X-Forwarded-Host"];
        var host = peerTrusted && forwardedHost.Count > 0 ? forwardedHost.ToString() : incoming.Host.Value;
        if (!string.IsNullOrEmpty(host))
        {
            request.Headers.TryAddWithoutValidation("X-Forwarded-Host", host);
        }
        request.Headers.TryAddWithoutValidation("X-Real-IP", clientIp.Equals(peerAddress) ? peer : clientIp.ToString());
        request.Headers.TryAddWithoutValidation(RequestIds.HeaderName, requestId);

        // The backend's own key (contract: backend api_key over global key, in its auth_mode).
        if (backend.AuthHeaderName is not null)
        {
            request.Headers.TryAddWithoutValidation(backend.AuthHeaderName, backend.AuthHeaderValue);
        }
        return request;
    }

    private static void AddHeader(HttpHeaders headers, string name, StringValues values)
    {
        if (values.Count == 1)
        {
            headers.TryAddWithoutValidation(name, values[0]);
        }
        else
        {
            headers.TryAddWithoutValidation(name, values.ToArray());
        }
    }

    private static bool HasToken(StringValues values, string token)
    {
        foreach (var value in values)
        {
            if (value is null)
            {
                continue;
            }
            foreach (var range in value.AsSpan().Split(','))
            {
                var item = value.AsSpan(range).Trim();
                var semicolon = item.IndexOf(';');
                if ((semicolon < 0 ? item : item[..semicolon]).Trim().Equals(token, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>The values of a field as one comma-separated string (RFC 9110 §5.3), plus more; null when there are none.</summary>
    private static string? Join(StringValues values, string? more)
        => values.Count == 0 ? more : more is null ? values.ToString() : values.ToString() + ", " + more;

    /// <summary>
    /// Why a backend's head (as SocketsHttpHandler parsed it) is not valid RFC 9110/9112, by the rules
    /// the fast path parses with (<see cref="HttpSyntax"/>); null when it is. SocketsHttpHandler
    /// already refuses malformed status lines and field names; this adds what it lets through: a
    /// status outside 200–599 (it hands over 099, 600 and a 101 nobody asked for), control bytes in
    /// a reason phrase or value, a Content-Length that is not one 1*DIGIT value, framing on a 204.
    /// </summary>
    private static string? InvalidHead(HttpResponseMessage upstream)
    {
        var status = (int)upstream.StatusCode;
        if (status is < 200 or > 599)
        {
            return "status " + status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        if (upstream.ReasonPhrase is { Length: > 0 } reason && !HttpSyntax.Holds(reason, HttpSyntax.IsResponseFieldValue))
        {
            return "malformed status line";
        }
        var lengths = 0;
        var framed = false;
        Span<byte> digits = stackalloc byte[32];
        foreach (var fields in (ReadOnlySpan<HttpHeadersNonValidated>)[upstream.Headers.NonValidated, upstream.Content.Headers.NonValidated])
        {
            foreach (var field in fields)
            {
                if (!HttpSyntax.Holds(field.Key, HttpSyntax.IsToken))
                {
                    return "malformed header field";
                }
                var contentLength = field.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase);
                framed |= field.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase);
                foreach (var value in field.Value)
                {
                    if (!HttpSyntax.Holds(value, HttpSyntax.IsResponseFieldValue))
                    {
                        return "malformed header field";
                    }
                    if (contentLength)
                    {
                        using var bytes = new WireBytes(value.AsSpan().Trim([' ', '\t']), digits);
                        if (++lengths > 1 || !bytes.Valid || !HttpSyntax.TryParseContentLength(bytes.Span, out var length))
                        {
                            return "invalid Content-Length";
                        }
                        framed |= length > 0;
                    }
                }
            }
        }
        // RFC 9110 §8.6, RFC 9112 §6.1: a 204 carries no body and no framing for one.
        return status == 204 && framed ? "framing on a 204" : null;
    }

    private static void CopyResponseHeaders(HttpResponseMessage upstream, HttpResponse response)
    {
        string? connectionValue = null;
        if (upstream.Headers.NonValidated.TryGetValues("Connection", out var connection))
        {
            connectionValue = HeaderRules.ConnectionNamingFields(connection.ToString());
        }
        // RFC 9112 §6.3 (3): with Transfer-Encoding the received Content-Length is not the body's
        // length and must not be relayed (Kestrel would abort the response on the mismatch).
        var chunked = upstream.Headers.TransferEncodingChunked == true;
        CopyHeaders(upstream.Headers.NonValidated, response, connectionValue, dropContentLength: false);
        CopyHeaders(upstream.Content.Headers.NonValidated, response, connectionValue, dropContentLength: chunked);
    }

    private static void CopyHeaders(HttpHeadersNonValidated source, HttpResponse response, string? connectionValue, bool dropContentLength)
    {
        foreach (var header in source)
        {
            var name = header.Key;
            if (HeaderRules.HopByHop.Contains(name) || HeaderRules.ResponseReplaced.Contains(name)
                || (connectionValue is not null && HeaderRules.NamedByConnection(connectionValue, name))
                || (dropContentLength && name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }
            var values = header.Value;
            if (values.Count == 1)
            {
                foreach (var v in values)
                {
                    response.Headers[name] = v;
                }
            }
            else
            {
                var array = new string[values.Count];
                var i = 0;
                foreach (var v in values)
                {
                    array[i++] = v;
                }
                response.Headers[name] = array;
            }
        }
    }

    private static StreamKind StreamKindOf(HttpResponseMessage upstream)
    {
        var mediaType = upstream.Content.Headers.NonValidated.TryGetValues("Content-Type", out var contentType) ? contentType.ToString() : null;
        if (mediaType is not null)
        {
            if (mediaType.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase))
            {
                return StreamKind.Sse;
            }
            if (mediaType.StartsWith("application/x-ndjson", StringComparison.OrdinalIgnoreCase)
                || mediaType.StartsWith("application/ndjson", StringComparison.OrdinalIgnoreCase)
                || mediaType.StartsWith("application/jsonl", StringComparison.OrdinalIgnoreCase))
            {
                return StreamKind.Ndjson;
            }
        }
        var hasLength = upstream.Content.Headers.NonValidated.Contains("Content-Length");
        return !hasLength && upstream.Headers.TransferEncodingChunked == true ? StreamKind.Chunked : StreamKind.None;
    }

    private static HttpMethod MethodOf(string method) => method switch
    {
        "GET" => HttpMethod.Get,
        "POST" => HttpMethod.Post,
        "PUT" => HttpMethod.Put,
        "DELETE" => HttpMethod.Delete,
        "PATCH" => HttpMethod.Patch,
        "HEAD" => HttpMethod.Head,
        "OPTIONS" => HttpMethod.Options,
        _ => new HttpMethod(method),
    };

    /// <summary>JSON answers and event streams may carry an OpenAI-style `usage` object worth counting.</summary>
    private static bool CarriesUsageOf(HttpResponseMessage upstream, StreamKind kind)
    {
        if (kind is StreamKind.Sse or StreamKind.Ndjson)
        {
            return true;
        }
        return upstream.Content.Headers.NonValidated.TryGetValues("Content-Type", out var type)
            && type.ToString().Contains("json", StringComparison.OrdinalIgnoreCase);
    }
}
