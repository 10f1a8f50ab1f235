using System.Buffers;
using System.Buffers.Text;
using System.Collections.Frozen;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Observability;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Connections.Features;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The fast path's relay (<see cref="Http1FastPath"/>): the same exchange as
/// <see cref="ForwardAsync"/> — pick, fail over while nothing was delivered, passive health,
/// timers, usage, metrics, error frames — with the client side on the raw connection and the
/// upstream side on a <see cref="Http1Connection"/>, bytes in and bytes out.
/// </summary>
internal sealed partial class HttpForwarder
{
    /// <summary>Request bodies up to this size that arrived with the head go upstream in the head's send, and can be re-sent on failover.</summary>
    private const int InlineBodyLimit = 64 * 1024;

    /// <summary>Largest body slice relayed per read (the general path's copy buffer is 64 KiB too).</summary>
    private const int RelayChunk = 64 * 1024;

    /// <summary>A chunk header with a fixed-width size (RFC 9112 §7.1 allows leading zeros): "0000abcd\r\n".</summary>
    private const int ChunkPrefix = 10;

    /// <summary>
    /// The response fields never relayed: <see cref="HeaderRules.HopByHop"/>,
    /// <see cref="HeaderRules.ResponseReplaced"/>, and Content-Length, which the client gets
    /// recomputed (<see cref="Http1ResponseHead.ClientContentLength"/>), never as the backend wrote it.
    /// </summary>
    private static readonly AsciiNameSet ResponseDropped = new(HeaderRules.HopByHop.Concat(HeaderRules.ResponseReplaced).Append("Content-Length"));

    /// <summary>The fast path's upstream connections: one pool per backend host and port, for this gateway's lifetime.</summary>
    private readonly ConcurrentPools _pools = new();

    /// <summary>TRANSPORT=epoll: the fast path's upstream connections open on these loops (set once, before the first request).</summary>
    internal Transport.EpollLoops? Loops { get; set; }

    /// <summary>The end of a shutdown's drain: the fast path links each connection's timers to it, as the general path links each request's.</summary>
    internal CancellationToken ShutdownDeadline => drain.Deadline;

    /// <summary>Closes the fast path's pooled upstream connections (at shutdown).</summary>
    internal void DisposeUpstreamPools() => _pools.Dispose();

    /// <summary>
    /// Serves one client connection while its requests are fast-path requests: reads each head,
    /// lets <paramref name="gate"/> admit it and relays it. True when a request was declined: its
    /// head is left unread and the connection goes to Kestrel. One async method for the whole
    /// connection on purpose — its state machine is allocated once per connection, where a relay
    /// method per request allocated its own (about 360 of the 800 bytes a request allocated).
    /// </summary>
    internal async Task<bool> ServeHttp1Async(Http1Exchange exchange, Http1FastPath gate)
    {
        var input = exchange.Input;
        var head = exchange.Head;
        var clientGone = exchange.Connection.ConnectionClosed;
        using var idle = new CancellationTokenSource();
        using var closeRequested = exchange.Connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested
            .UnsafeRegister(static s => ((PipeReader)s!).CancelPendingRead(), input);
        // The server's shutdown asked this connection to close (Kestrel's close request cancels the pending read).
        var closing = false;
        while (true)
        {
            // 1. A complete head, under Kestrel's keep-alive and header timeouts.
            ReadResult result;
            Http1HeadStatus status;
            SequencePosition consumed;
            // Kestrel's rules: the keep-alive timeout until a request's first byte, then the headers
            // timeout from that byte on, armed once (re-arming it per read would let a client
            // that sends a byte every 29 s hold the connection for ever).
            var headTimerArmed = false;
            idle.CancelAfter(Http1FastPath.KeepAliveTimeout);
            while (true)
            {
                try
                {
                    result = await input.ReadAsync(idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return false;   // idle too long, or a head that never completes: close, as Kestrel does
                }
                if (result.IsCanceled)
                {
                    // Server shutdown: an idle connection closes now; a request already begun is
                    // still answered (below), and then the connection closes.
                    if (result.Buffer.IsEmpty)
                    {
                        input.AdvanceTo(result.Buffer.End);
                        return false;
                    }
                    closing = true;
                }
                status = head.TryRead(result.Buffer, out consumed);
                if (status != Http1HeadStatus.Incomplete)
                {
                    break;
                }
                if (result.IsCompleted)
                {
                    input.AdvanceTo(result.Buffer.End);
                    return false;   // the client closed (possibly mid-head)
                }
                if (!headTimerArmed && !result.Buffer.IsEmpty)
                {
                    idle.CancelAfter(Http1FastPath.RequestHeadersTimeout);
                    headTimerArmed = true;
                }
                input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            }
            idle.CancelAfter(Timeout.InfiniteTimeSpan);

            // 2. Ours, or Kestrel's from here on (the head stays unread for it).
            var route = status == Http1HeadStatus.Fast ? gate.Admit(head) : null;
            if (route is null)
            {
                if (closing)
                {
                    // Kestrel serves nothing on a connection that reaches it after its shutdown began
                    // (it closes it unanswered), so a request that began before the signal is
                    // answered here: the gateway is shutting down, try again elsewhere.
                    var id = status == Http1HeadStatus.Fast ? RequestIdOf(head) : RequestIds.Next();
                    input.AdvanceTo(result.Buffer.End);
                    await WriteErrorAsync(exchange.Output, head, ForwarderErrors.StatusCode(ForwarderError.Shutdown), ForwarderError.Shutdown, id.ToString(), close: true).ConfigureAwait(false);
                    return false;
                }
                input.AdvanceTo(result.Buffer.Start, result.Buffer.Start);
                return true;
            }
            input.AdvanceTo(consumed);
            var close = head.Close || closing;

            // 3. The exchange: the same steps as ForwardAsync, on bytes (3a–3c).
            var started = time.GetTimestamp();
            metrics.FastPathRequest();
            var method = head.Method;
            var requestId = RequestIdOf(head);
            var clientIp = exchange.PeerTrusted && head.ForwardedFor >= 0
                ? ClientAddress.ResolveChain(exchange.Peer, Encoding.ASCII.GetString(head.Value(head.ForwardedFor)), settings.TrustedProxies)
                : exchange.Peer;
            var affinityKey = route.AffinityConfig.Kind == AffinityKind.None ? (ulong?)null : StableHash.Hash(clientIp);
            var hasBody = head.ContentLength > 0;
            var timeouts = exchange.RentTimeouts();
            bool keepAlive;
            // The body, when it came with the head and is small: taken now, so failover can send it again.
            byte[]? inlineBody = null;
            var bodyLength = (int)Math.Min(head.ContentLength, int.MaxValue);
            if (hasBody && head.ContentLength <= InlineBodyLimit && input.TryRead(out var buffered))
            {
                if (buffered.Buffer.Length >= head.ContentLength)
                {
                    inlineBody = ArrayPool<byte>.Shared.Rent(bodyLength);
                    var body = buffered.Buffer.Slice(0, bodyLength);
                    body.CopyTo(inlineBody);
                    input.AdvanceTo(body.End);
                }
                else
                {
                    input.AdvanceTo(buffered.Buffer.Start);
                }
            }
            var bodyConsumed = !hasBody || inlineBody is not null;

            // 3a. Pick a backend and send; fail over while nothing has been delivered.
            ulong tried = 0;
            var attempts = 0;
            var error = ForwarderError.None;
            Http1Connection? connection = null;
            BackendEntry backend = default;
            var admission = Admission.Refused;
            var bodyStarted = false;
            Exception? clientReadError = null;
            var responseHeadLength = 0;
            Http1ResponseHead response = default;
            try
            {
                while (true)
                {
                    if (!NextBackend(route, affinityKey, tried, requestId, ref attempts, ref error, out var pick, out backend))
                    {
                        break;
                    }
                    admission = pick.Admission;
                    var target = backend.Http1!;
                    byte[]? requestHead = HeadBuffers.Rent(2 * head.Length + 512 + requestId.Length
                        + target.PathPrefix.Length + target.HostLine.Length + target.AuthLine.Length + (inlineBody is null ? 0 : bodyLength));
                    var length = WriteRequestHead(requestHead, head, target, exchange, clientIp, requestId, inlineBody, bodyLength);
                    backend.State.OnRequestStart();
                    metrics.UpstreamStarted();
                    ExchangeTimers.AwaitUpstream(timeouts, settings);
                    var retriedStale = false;
                    var staleRetryHead = requestHead;
                    var staleRetryLength = length;
                    try
                    {
                        connection = await SendHeadAsync(_pools.For(target, settings, _budgets, Loops), requestHead.AsMemory(0, length), timeouts.Token).ConfigureAwait(false);
                        bodyStarted = hasBody;
                        if (!bodyConsumed)
                        {
                            clientReadError = await CopyRequestBodyAsync(input, connection, head.ContentLength, timeouts, settings).ConfigureAwait(false);
                            bodyConsumed = clientReadError is null;
                            if (clientReadError is not null)
                            {
                                throw new IOException("Reading the client's request body failed.", clientReadError);
                            }
                            // The request is completely sent: from here on the wait is the backend's.
                            ExchangeTimers.AwaitUpstream(timeouts, settings);
                        }
                        // The response head (interim 1xx skipped, RFC 9110 §15.2). A reused connection
                        // the backend had closed yields no byte: the same request once more on a fresh
                        // one, as SocketsHttpHandler does (nothing was consumed without a body).
                        var scanned = 0;
                        while (!connection.TryFindHead(ref scanned, out responseHeadLength)
                            || Http1ResponseHead.StatusOf(connection.BufferedSpan[..responseHeadLength]) is >= 100 and < 200 and not 101)
                        {
                            if (responseHeadLength > 0)
                            {
                                connection.Consume(responseHeadLength);
                                responseHeadLength = 0;
                                scanned = 0;
                                continue;
                            }
                            int read;
                            try
                            {
                                read = await connection.ReceiveAsync(timeouts.Token).ConfigureAwait(false);
                            }
                            catch (SocketException) when (connection.Reused && !hasBody && connection.Buffered == 0 && !retriedStale)
                            {
                                read = -1;
                            }
                            if (read == 0 && connection.Reused && !hasBody && connection.Buffered == 0 && !retriedStale)
                            {
                                read = -1;
                            }
                            if (read < 0)
                            {
                                retriedStale = true;
                                connection.Abandon();
                                connection = null;
                                connection = await SendHeadAsync(_pools.For(target, settings, _budgets, Loops), staleRetryHead!.AsMemory(0, staleRetryLength), timeouts.Token, fresh: true).ConfigureAwait(false);
                                scanned = 0;
                                continue;
                            }
                            if (read == 0)
                            {
                                throw new HttpRequestException(HttpRequestError.ResponseEnded, "The upstream closed the connection before the response head was complete.");
                            }
                            connection.Received(read);
                        }
                        response = Http1ResponseHead.Parse(connection.BufferedSpan[..responseHeadLength], method == "HEAD");
                        HeadBuffers.Return(requestHead);
                        break;
                    }
                    catch (Exception ex)
                    {
                        HeadBuffers.Return(requestHead);
                        requestHead = null;
                        connection?.Abandon();
                        connection = null;
                        error = Classify(ex is HttpRequestException || ex is OperationCanceledException || clientReadError is not null ? ex : Wrap(ex), clientGone.IsCancellationRequested, clientReadError);
                        if (RetryAfterFailedAttempt(route, backend, admission, error, Wrap(ex), bodyStarted, hasBody, method, requestId))
                        {
                            tried |= 1UL << pick.Index;
                            continue;
                        }
                        break;
                    }
                }
            }
            finally
            {
                // The head is written upstream: its bytes are not needed any more (a long stream holds none).
                head.Release();
                if (inlineBody is not null)
                {
                    ArrayPool<byte>.Shared.Return(inlineBody);
                }
            }

            if (connection is null)
            {
                var errorStatus = ForwarderErrors.StatusCode(error);
                if (error == ForwarderError.NoHealthyBackend)
                {
                    LogNoBackend(logger, requestId.ToString(), route.RouteLabel);
                }
                var keep = !close && bodyConsumed && error != ForwarderError.ClientGone && !clientGone.IsCancellationRequested;
                if (error != ForwarderError.ClientGone && !clientGone.IsCancellationRequested)
                {
                    keep &= await WriteErrorAsync(exchange.Output, head, errorStatus, error, requestId.ToString(), close: !keep).ConfigureAwait(false);
                }
                exchange.ReturnTimeouts(timeouts);
                Complete(method, route, attempts == 0 ? null : backend.State, errorStatus, attempts, error, requestId, started, null);
                keepAlive = keep;
            }
            else
            {
                // 3b. The response head: what reaches the client, then the body framing, then 3c. the body.
                var responseHead = HeadBuffers.Rent(responseHeadLength + 512);
                var headLength = WriteResponseHead(responseHead, connection.BufferedSpan[..responseHeadLength], response, requestId, close);
                connection.Consume(responseHeadLength);
                var statusCode = response.Status;
                ReportResponseStatus(route, backend, admission, statusCode);
                var stream = exchange.ResponseBody;
                stream.Begin(connection, response.Framing, response.BodyLength, response.KeepAlive);
                stream.CompleteIfEmpty();
                var usage = statusCode is >= 200 and < 300 && response.CarriesUsage ? exchange.ResetUsage() : null;
                var outcome = ForwarderError.None;
                double? firstByteMs = null;
                var keepClient = !close;
                try
                {
                    var relay = await RelayBodyAsync(exchange.Output, stream, response, responseHead.AsMemory(0, headLength), usage, timeouts, clientGone).ConfigureAwait(false);
                    if (relay.FirstChunkAt != 0)
                    {
                        firstByteMs = time.GetElapsedTime(started, relay.FirstChunkAt).TotalMilliseconds;
                    }
                    if (relay.Outcome != StreamCopyOutcome.Completed)
                    {
                        outcome = CopyFailure(route, backend, admission, relay.Outcome == StreamCopyOutcome.WriteFailed || clientGone.IsCancellationRequested,
                            timeouts.IsCancellationRequested, relay.FirstChunkAt != 0);
                        LogStreamFailed(logger, requestId.ToString(), ForwarderErrors.Code(outcome), relay.Exception?.GetType().Name ?? "-");
                        if (outcome == ForwarderError.ClientGone)
                        {
                            keepClient = false;
                        }
                        else if (!relay.Started)
                        {
                            // Nothing reached the client yet: a proper error status is still possible.
                            statusCode = ForwarderErrors.StatusCode(outcome);
                            keepClient &= await WriteErrorAsync(exchange.Output, head, statusCode, outcome, requestId.ToString(), close: close).ConfigureAwait(false);
                        }
                        else
                        {
                            await FailStartedHttp1Async(exchange, response, outcome, requestId.ToString()).ConfigureAwait(false);
                            keepClient = false;
                        }
                    }
                }
                finally
                {
                    HeadBuffers.Return(responseHead);
                    exchange.ReturnTimeouts(timeouts);
                    stream.End();
                    usage?.Release();   // the counts stay readable until the next request resets the scanner
                    backend.State.OnRequestEnd(error: BlamesBackend(statusCode, outcome));
                    metrics.UpstreamEnded();
                }

                CompleteResponse(method, route, backend, statusCode, attempts, outcome, usage, requestId, started, firstByteMs);
                keepAlive = keepClient;
            }

            head.Release();
            if (!keepAlive || close)
            {
                return false;
            }
        }
    }

    private static RequestId RequestIdOf(Http1RequestHead head)
    {
        if (head.RequestId >= 0)
        {
            var value = head.Value(head.RequestId);
            if (value.Length is > 0 and <= RequestIds.MaxLength)
            {
                Span<char> chars = stackalloc char[value.Length];
                Encoding.ASCII.GetChars(value, chars);
                if (RequestIds.IsWellFormed(chars))
                {
                    return new string(chars);
                }
            }
        }
        return RequestIds.Next();
    }

    /// <summary>Socket failures while sending, as an HttpClient reports them (so Classify and ConnectionDropped read them alike).</summary>
    private static Exception Wrap(Exception ex) => ex is SocketException or IOException
        ? new HttpRequestException(HttpRequestError.Unknown, "Sending the request upstream failed: " + ex.Message, ex)
        : ex;

    /// <summary>
    /// An idle pooled connection, or a new one; a reused connection the backend had already closed
    /// fails the send or yields no response byte, and then the same head goes out once more on a
    /// fresh connection (what SocketsHttpHandler does; nothing of the request was consumed).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<Http1Connection> SendHeadAsync(Http1ConnectionPool pool, ReadOnlyMemory<byte> head, CancellationToken cancellationToken, bool fresh = false)
    {
        while (true)
        {
            var connection = await pool.RentAsync(fresh, cancellationToken).ConfigureAwait(false);
            var reused = connection.BeginExchange();
            try
            {
                await connection.SendAllAsync(head, cancellationToken).ConfigureAwait(false);
                return connection;
            }
            catch (SocketException) when (reused)
            {
                connection.Abandon();
                fresh = true;
            }
            catch
            {
                connection.Abandon();
                throw;
            }
        }
    }

    /// <summary>
    /// Streams a body that did not come with the head; the error is the client's side failing
    /// (null when all was sent), a timeout waiting for the client included (<see cref="ExchangeTimers"/>:
    /// reads run on the client's timer, sends on the backend's). Bytes from the backend before the
    /// body is all sent mean the response began early: the connection is not reused afterwards.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<Exception?> CopyRequestBodyAsync(PipeReader input, Http1Connection connection, long length, CancellationTokenSource timer, GatewaySettings settings)
    {
        var remaining = length;
        var early = false;
        while (remaining > 0)
        {
            ReadResult result;
            ExchangeTimers.AwaitClient(timer, settings);
            try
            {
                result = await input.ReadAsync(timer.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                return ex;
            }
            var buffer = result.Buffer;
            if (buffer.IsEmpty && result.IsCanceled && !result.IsCompleted)
            {
                // The server's shutdown asked the connection to close after this request (the
                // ConnectionClosedRequested callback cancels the pending read): the body still comes.
                input.AdvanceTo(buffer.Start);
                continue;
            }
            if (buffer.IsEmpty && result.IsCompleted)
            {
                return new IOException($"The client's request body ended {remaining} bytes before its Content-Length.");
            }
            ExchangeTimers.AwaitUpstream(timer, settings);
            if (!early && (connection.Buffered > 0 || !connection.LooksAlive()))
            {
                early = true;
                connection.MarkNotReusable();
            }
            var slice = buffer.Slice(0, Math.Min(buffer.Length, remaining));
            foreach (var segment in slice)
            {
                await connection.SendAllAsync(segment, timer.Token).ConfigureAwait(false);
            }
            remaining -= slice.Length;
            input.AdvanceTo(slice.End);
        }
        return null;
    }

    /// <summary>The upstream request head (RFC 9112 §3): the client's fields minus hop-by-hop and replaced ones, then the gateway's.</summary>
    internal static int WriteRequestHead(byte[] buffer, Http1RequestHead head, Http1Target target, Http1Exchange exchange, System.Net.IPAddress clientIp, RequestId requestId, byte[]? inlineBody, int bodyLength)
    {
        var w = new ByteWriter(buffer);
        w.Ascii(head.Method);
        w.Byte((byte)' ');
        w.Bytes(target.PathPrefix);
        var remainder = head.Target[head.RemainderOffset..];
        if (remainder.IsEmpty || remainder[0] == (byte)'?')
        {
            w.Byte((byte)'/');
        }
        w.Bytes(remainder);
        w.Bytes(" HTTP/1.1\r\n"u8);
        w.Bytes(target.HostLine);
        var hasBody = head.ContentLength > 0;
        for (var i = 0; i < head.FieldCount; i++)
        {
            if (head.Forwarded(i) && (hasBody || !head.IsContentField(i)))
            {
                w.Bytes(head.Line(i));
                w.Bytes("\r\n"u8);
            }
        }
        if (hasBody)
        {
            w.Bytes("Content-Length: "u8);
            w.Number(head.ContentLength);
            w.Bytes("\r\n"u8);
        }
        else if (head.Method is "POST" or "PUT")
        {
            // RFC 9110 §8.6: a body-expecting method without a body says so.
            w.Bytes("Content-Length: 0\r\n"u8);
        }
        // Forwarding headers: recomputed, the client's values believed only from a trusted proxy (as CreateRequest does).
        var trusted = exchange.PeerTrusted;
        w.Bytes("X-Forwarded-For: "u8);
        if (trusted && head.ForwardedFor >= 0)
        {
            w.Bytes(head.Value(head.ForwardedFor));
            w.Bytes(", "u8);
        }
        w.Bytes(exchange.PeerBytes);
        w.Bytes("\r\nX-Forwarded-Proto: "u8);
        w.Bytes(trusted && head.ForwardedProto >= 0 ? head.Value(head.ForwardedProto) : exchange.Https ? "https"u8 : "http"u8);
        w.Bytes("\r\nX-Forwarded-Host: "u8);
        w.Bytes(head.Value(trusted && head.ForwardedHost >= 0 ? head.ForwardedHost : head.Host));
        w.Bytes("\r\nX-Real-IP: "u8);
        if (clientIp.Equals(exchange.Peer))
        {
            w.Bytes(exchange.PeerBytes);
        }
        else
        {
            w.Ascii(clientIp.ToString());
        }
        w.Bytes("\r\nX-Request-ID: "u8);
        w.Ascii(requestId);
        w.Bytes("\r\n"u8);
        w.Bytes(target.AuthLine);
        w.Bytes("\r\n"u8);
        if (inlineBody is not null)
        {
            w.Bytes(inlineBody.AsSpan(0, bodyLength));
        }
        return w.Length;
    }

    /// <summary>
    /// The client's response head: status line, the backend's fields minus hop-by-hop ones (and the
    /// ones its Connection field names), then the gateway's, with one framing field: the recomputed
    /// Content-Length or chunked.
    /// </summary>
    internal static int WriteResponseHead(byte[] buffer, ReadOnlySpan<byte> raw, in Http1ResponseHead response, RequestId requestId, bool close)
    {
        var w = new ByteWriter(buffer);
        w.Bytes(Http1ResponseHead.StatusLine(response.Status));
        if (!response.HasDate)
        {
            w.Bytes(HttpDateLine.Current);
        }
        var fields = raw[(HttpAscii.IndexOfCrlf(raw) + 2)..^2];
        for (var rest = fields; !rest.IsEmpty;)
        {
            var lineEnd = HttpAscii.IndexOfCrlf(rest);
            var line = lineEnd < 0 ? rest : rest[..lineEnd];
            rest = lineEnd < 0 ? default : rest[(lineEnd + 2)..];
            var name = line[..line.IndexOf((byte)':')];
            if (ResponseDropped.Contains(name)
                || (response.Kind != StreamKind.None && (HttpAscii.EqualsIgnoreCase(name, "Cache-Control"u8) || HttpAscii.EqualsIgnoreCase(name, "X-Accel-Buffering"u8)))
                || (response.ConnectionNamesFields && NamedByConnection(fields, name)))
            {
                continue;
            }
            w.Bytes(line);
            w.Bytes("\r\n"u8);
        }
        w.Bytes("X-Request-ID: "u8);
        w.Ascii(requestId);
        w.Bytes("\r\n"u8);
        if (response.Kind != StreamKind.None)
        {
            // Event streams: no buffering anywhere, including an nginx in front of us.
            w.Bytes("X-Accel-Buffering: no\r\nCache-Control: no-cache\r\n"u8);
        }
        if (response.ChunkedToClient)
        {
            w.Bytes("Transfer-Encoding: chunked\r\n"u8);
        }
        else if (response.ClientContentLength >= 0)
        {
            w.Bytes("Content-Length: "u8);
            w.Number(response.ClientContentLength);
            w.Bytes("\r\n"u8);
        }
        if (close)
        {
            w.Bytes("Connection: close\r\n"u8);
        }
        w.Bytes("\r\n"u8);
        return w.Length;
    }

    /// <summary>True when a Connection line of the (validated) response <paramref name="fields"/> names <paramref name="name"/>.</summary>
    private static bool NamedByConnection(ReadOnlySpan<byte> fields, ReadOnlySpan<byte> name)
    {
        for (var rest = fields; !rest.IsEmpty;)
        {
            var lineEnd = HttpAscii.IndexOfCrlf(rest);
            var line = lineEnd < 0 ? rest : rest[..lineEnd];
            rest = lineEnd < 0 ? default : rest[(lineEnd + 2)..];
            var colon = line.IndexOf((byte)':');
            if (HttpAscii.EqualsIgnoreCase(line[..colon], "Connection"u8) && HeaderRules.NamedByConnection(line[(colon + 1)..], name))
            {
                return true;
            }
        }
        return false;
    }

    private readonly record struct RelayResult(StreamCopyOutcome Outcome, bool Started, long FirstChunkAt, Exception? Exception);

    /// <summary>
    /// Copies the body to the client as it arrives, each read flushed at once; the head goes out with
    /// the first chunk (or at once for event streams, or at the end of an empty body), so a failure
    /// before any body byte can still become an error status. The first read runs under the
    /// first-byte timer, every later one re-arms the idle timer.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<RelayResult> RelayBodyAsync(PipeWriter output, Http1ResponseStream stream, Http1ResponseHead response, ReadOnlyMemory<byte> head, UsageScanner? usage, CancellationTokenSource timeouts, CancellationToken clientGone)
    {
        var started = false;
        long firstChunkAt = 0;
        var chunked = response.ChunkedToClient;
        var remaining = response.Framing == Http1Framing.Length ? response.BodyLength : -1;
        try
        {
            if (response.Kind != StreamKind.None || remaining == 0 || !response.BodyAllowed)
            {
                Write(output, head.Span);
                started = true;
                if (remaining == 0 || !response.BodyAllowed)
                {
                    if (chunked)
                    {
                        Write(output, "0\r\n\r\n"u8);
                    }
                    var done = await output.FlushAsync(clientGone).ConfigureAwait(false);
                    return new RelayResult(done.IsCompleted ? StreamCopyOutcome.WriteFailed : StreamCopyOutcome.Completed, true, time.GetTimestamp(), null);
                }
                var flushed = await output.FlushAsync(clientGone).ConfigureAwait(false);
                if (flushed.IsCompleted)
                {
                    return new RelayResult(StreamCopyOutcome.WriteFailed, true, 0, null);
                }
            }
            while (true)
            {
                var headPart = started ? 0 : head.Length;
                var prefix = chunked ? ChunkPrefix : 0;
                Memory<byte> memory;
                int read;
                try
                {
                    if (started && response.Kind != StreamKind.None)
                    {
                        // Idle streams wait without holding a buffer (zero-byte read); a timeout or
                        // reset while waiting is the upstream's failure, like one during a read.
                        await stream.ReadAsync(Memory<byte>.Empty, timeouts.Token).ConfigureAwait(false);
                    }
                    memory = output.GetMemory(headPart + prefix + 8192 + 2);
                    var room = Math.Min(memory.Length - headPart - prefix - 2, RelayChunk);
                    read = await stream.ReadAsync(memory.Slice(headPart + prefix, room), timeouts.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException)
                {
                    return new RelayResult(StreamCopyOutcome.ReadFailed, started, firstChunkAt, ex);
                }
                if (read == 0)
                {
                    if (!started)
                    {
                        Write(output, head.Span);
                        started = true;
                    }
                    if (chunked)
                    {
                        Write(output, "0\r\n\r\n"u8);
                    }
                    var end = await output.FlushAsync(clientGone).ConfigureAwait(false);
                    return new RelayResult(end.IsCompleted ? StreamCopyOutcome.WriteFailed : StreamCopyOutcome.Completed, true, firstChunkAt, null);
                }
                if (firstChunkAt == 0)
                {
                    firstChunkAt = time.GetTimestamp();
                }
                ExchangeTimers.AwaitNextChunk(timeouts, settings);
                var span = memory.Span;
                usage?.Observe(span.Slice(headPart + prefix, read));
                head.Span[..headPart].CopyTo(span);
                var total = headPart + prefix + read;
                if (chunked)
                {
                    WriteChunkSize(span.Slice(headPart, ChunkPrefix), read);
                    "\r\n"u8.CopyTo(span[total..]);
                    total += 2;
                }
                remaining -= read;   // only a length-framed body counts down to 0; the others stay negative
                output.Advance(total);
                started = true;
                var result = await output.FlushAsync(clientGone).ConfigureAwait(false);
                if (result.IsCompleted)
                {
                    return new RelayResult(StreamCopyOutcome.WriteFailed, true, firstChunkAt, null);
                }
                if (remaining == 0)
                {
                    return new RelayResult(StreamCopyOutcome.Completed, true, firstChunkAt, null);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            return new RelayResult(StreamCopyOutcome.WriteFailed, started, firstChunkAt, ex);
        }
    }

    private static void Write(PipeWriter output, ReadOnlySpan<byte> bytes)
    {
        var span = output.GetSpan(bytes.Length);
        bytes.CopyTo(span);
        output.Advance(bytes.Length);
    }

    private static void WriteChunkSize(Span<byte> destination, int size)
    {
        for (var i = 7; i >= 0; i--)
        {
            destination[i] = (byte)"0123456789abcdef"[size & 0xF];
            size >>= 4;
        }
        destination[8] = (byte)'\r';
        destination[9] = (byte)'\n';
    }

    /// <summary>
    /// The response already reached the client: make the failure unmistakable (the general path's
    /// <see cref="FailAfterResponseAsync"/>): an error event or line for streams, then an abortive end.
    /// </summary>
    private async Task FailStartedHttp1Async(Http1Exchange exchange, Http1ResponseHead response, ForwarderError error, string requestId)
    {
        var frame = response.Kind switch
        {
            StreamKind.Sse => StreamErrorFrames.Sse(error, requestId),
            StreamKind.Ndjson => StreamErrorFrames.Ndjson(error, requestId),
            _ => null,
        };
        if (frame is not null)
        {
            try
            {
                var output = exchange.Output;
                if (response.ChunkedToClient)
                {
                    var prefix = output.GetSpan(ChunkPrefix);
                    WriteChunkSize(prefix, frame.Length);
                    output.Advance(ChunkPrefix);
                    Write(output, frame);
                    Write(output, "\r\n"u8);
                }
                else
                {
                    Write(output, frame);
                }
                await output.FlushAsync(exchange.Connection.ConnectionClosed).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
            {
                // The client is gone too.
            }
        }
        // An abort resets the connection, and a reset discards bytes still in flight: give the frame a moment.
        await Task.Delay(AbortGrace, time).ConfigureAwait(false);
        exchange.Connection.Abort();
    }

    /// <summary>An error answer in the gateway's JSON shape (<see cref="ErrorResponses"/>); false when the client is gone.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> WriteErrorAsync(PipeWriter output, Http1RequestHead head, int status, ForwarderError error, string requestId, bool close)
    {
        var body = ErrorResponses.Body(status, ForwarderErrors.Code(error), ForwarderErrors.Message(error), requestId);
        var buffer = HeadBuffers.Rent(512 + requestId.Length);
        try
        {
            var w = new ByteWriter(buffer);
            w.Bytes(Http1ResponseHead.StatusLine(status));
            w.Bytes(HttpDateLine.Current);
            w.Bytes("Content-Type: application/json; charset=utf-8\r\nCache-Control: no-store\r\nX-Request-ID: "u8);
            w.Ascii(requestId);
            w.Bytes("\r\nContent-Length: "u8);
            w.Number(head.Method == "HEAD" ? 0 : body.Length);
            w.Bytes(close ? "\r\nConnection: close\r\n\r\n"u8 : "\r\n\r\n"u8);
            Write(output, buffer.AsSpan(0, w.Length));
        }
        finally
        {
            HeadBuffers.Return(buffer);
        }
        if (head.Method != "HEAD")
        {
            Write(output, body);
        }
        try
        {
            var result = await output.FlushAsync().ConfigureAwait(false);
            return !result.IsCompleted;
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>One <see cref="Http1ConnectionPool"/> per backend host and port, shared across config snapshots.</summary>
    private sealed class ConcurrentPools : IDisposable
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Host, int Port), Http1ConnectionPool> _pools = new();

        public void Dispose()
        {
            foreach (var pool in _pools.Values)
            {
                pool.Dispose();
            }
        }

        public Http1ConnectionPool For(Http1Target target, Configuration.GatewaySettings settings, ConnectionBudgets budgets, Transport.EpollLoops? loops)
        {
            if (target.Pool is { } attached)
            {
                return Unsafe.As<Http1ConnectionPool>(attached);
            }
            var pool = _pools.GetOrAdd((target.Host, target.Port), static (key, s) =>
                new Http1ConnectionPool(key.Host, key.Port, s.Budgets.For(key.Host, key.Port), s.Settings.MaxKeepAliveConnections, s.Settings.ConnectTimeout, s.Loops),
                (Settings: settings, Budgets: budgets, Loops: loops));
            target.Pool = pool;
            return pool;
        }
    }

    /// <summary>Appends ASCII into a buffer sized by the caller (heads are bounded: 16 KiB in, 64 KiB from a backend).</summary>
    private ref struct ByteWriter(byte[] buffer)
    {
        private readonly Span<byte> _buffer = buffer;

        public int Length { get; private set; }

        public void Bytes(scoped ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(_buffer[Length..]);
            Length += bytes.Length;
        }

        public void Byte(byte b) => _buffer[Length++] = b;

        public void Ascii(string text) => Length += Encoding.ASCII.GetBytes(text, _buffer[Length..]);

        public void Ascii(RequestId id) => Length += id.CopyTo(_buffer[Length..]);

        public void Number(long value)
        {
            Utf8Formatter.TryFormat(value, _buffer[Length..], out var written);
            Length += written;
        }
    }
}
