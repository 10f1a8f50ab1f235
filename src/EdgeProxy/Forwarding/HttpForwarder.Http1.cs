using System.Buffers;
using System.Buffers.Text;
using System.Collections.Frozen;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Observability;
using EdgeProxy.Routing;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The fast path's sides of the exchange (<see cref="ExchangeAsync"/>, the same core as
/// <see cref="ForwardAsync"/>): the client is the raw HTTP/1.1 connection
/// (<see cref="Http1FastPath"/>, <see cref="Http1Exchange"/>), the upstream the raw HTTP/1.1 client
/// (<see cref="Http1Connection"/>), bytes in and bytes out.
/// </summary>
internal sealed partial class HttpForwarder
{    /// <summary>Largest body slice relayed per read (the general path's copy buffer is 64 KiB too).</summary>
    private const int RelayChunk = 64 * 1024;

    /// <summary>A chunk header with a fixed-width size (RFC 9112 §7.1 allows leading zeros): "0000abcd\r\n".</summary>
    private const int ChunkPrefix = 10;

    /// <summary>The fast path's upstream connections: one pool per backend host and port, for this gateway's lifetime.</summary>
    private readonly ConcurrentPools _pools = new();

    /// <summary>TRANSPORT=epoll: the fast path's upstream connections open on these loops (set once, before the first request).</summary>
    internal Transport.EpollLoops? Loops { get; set; }

    /// <summary>The end of a shutdown's drain: the fast path links each connection's timers to it, as the general path links each request's.</summary>
    internal CancellationToken ShutdownDeadline => drain.Deadline;

    /// <summary>Closes the fast path's pooled upstream connections (at shutdown).</summary>
    internal void DisposeUpstreamPools() => _pools.Dispose();

    /// <summary>
    /// Serves one client connection while its requests are fast-path requests (<see cref="ServeAsync"/>,
    /// the one frame for all of them). True when a request was declined: its head is left unread and
    /// the connection goes to Kestrel.
    /// </summary>
    internal ValueTask<bool> ServeHttp1Async(Http1Exchange exchange) => ServeAsync(new Http1Client(this, exchange), new Http1Upstream(this, exchange));

    /// <summary>
    /// Step 0 on the fast path: the head in <paramref name="read"/>, under Kestrel's keep-alive and
    /// header timeouts (<see cref="Http1Exchange.AwaitHead"/>), then the gate's admission.
    /// </summary>
    private RequestStep TakeHttp1Request(Http1Exchange x, in ReadResult read)
    {
        var (input, head, buffer) = (x.Input, x.Head, read.Buffer);
        if (read.IsCanceled)
        {
            // Server shutdown: an idle connection closes now; a request already begun is still
            // answered, and then the connection closes.
            x.Closing = true;
            if (buffer.IsEmpty)
            {
                input.AdvanceTo(buffer.End);
                return RequestStep.Close;
            }
        }
        var status = head.TryRead(buffer, out var consumed);
        if (status == Http1HeadStatus.Incomplete)
        {
            if (read.IsCompleted)
            {
                input.AdvanceTo(buffer.End);
                return RequestStep.Close;   // the client closed, possibly mid-head
            }
            x.HeadBegun(!buffer.IsEmpty);
            input.AdvanceTo(buffer.Start, buffer.End);
            return RequestStep.NeedBytes;
        }

        // Ours, or Kestrel's from here on (the head stays unread for it).
        var route = status == Http1HeadStatus.Fast ? x.Gate.Admit(head) : null;
        if (route is null)
        {
            if (x.Closing)
            {
                // Kestrel serves nothing on a connection that reaches it after its shutdown began (it
                // closes it unanswered), so this request is answered here: try again elsewhere.
                input.AdvanceTo(buffer.End);
                x.Refuse(status == Http1HeadStatus.Fast ? RequestIdOf(head) : RequestIds.Next());
                return RequestStep.Refuse;
            }
            input.AdvanceTo(buffer.Start, buffer.Start);
            return RequestStep.HandOver;
        }
        input.AdvanceTo(consumed);
        var started = time.GetTimestamp();
        metrics.FastPathRequest();
        var clientIp = x.PeerTrusted && head.ForwardedFor >= 0
            ? ClientAddress.ResolveChain(x.Peer, Encoding.ASCII.GetString(head.Value(head.ForwardedFor)), settings.TrustedProxies)
            : x.Peer;
        var affinityKey = route.AffinityConfig.Kind == AffinityKind.None ? (ulong?)null : StableHash.Hash(clientIp);
        x.BeginRequest(route, affinityKey, started, RequestIdOf(head), clientIp, close: head.Close || x.Closing);
        return RequestStep.Ready;
    }

    private readonly struct Http1Client(HttpForwarder forwarder, Http1Exchange x) : IExchangeClient
    {
        public ValueTask<ReadResult> ReadAsync() => x.Input.ReadAsync(x.Idle.Token);

        public RequestStep TakeRequest(in ReadResult read) => forwarder.TakeHttp1Request(x, read);

        public bool EndRequest(bool keepAlive) => x.EndRequest(keepAlive);

        public ModelRoute Route => x.Route!;

        public ulong? AffinityKey => x.AffinityKey;

        /// <summary>A body a conversation could be read from takes the general path: here keys are addresses or headers.</summary>
        public ulong? OpeningKey => null;

        public long Started => x.Started;

        public string Method => x.Head.Method;

        public bool IsInferenceCall => InferenceCalls.Is(x.Head.Method, System.Text.Encoding.Latin1.GetString(x.Head.Target));

        public RequestId RequestId => x.RequestId;

        public CancellationTokenSource Timeouts => x.Timeouts;

        public bool Gone => x.Connection.ConnectionClosed.IsCancellationRequested;

        public bool RenewTimeouts() => x.RenewTimeouts();

        public UsageScanner Usage() => x.ResetUsage();

        /// <summary>The connection closes after an error when the client asked, or when the request's body was not all read.</summary>
        public ValueTask<bool> WriteErrorAsync(int status, ForwarderError error)
            => WriteHttp1ErrorAsync(x.Output, x.Head, status, error, x.RequestId.ToString(), close: x.Close || !x.BodyConsumed);

        public ValueTask WriteFrameAsync(byte[] frame) => WriteHttp1FrameAsync(x, frame);

        public void Abort() => x.Connection.Abort();
    }

    private readonly struct Http1Upstream(HttpForwarder forwarder, Http1Exchange x) : IUpstreamExchange
    {
        public bool HasBody => x.Head.ContentLength > 0;

        public bool CanResend => x.Head.ContentLength <= 0 || (x.InlineBody is not null && x.InlineLength <= forwarder.RetryBufferBytes);

        public bool BodyStarted => x.BodyStarted;

        public Exception? ClientReadError => x.ClientReadError;

        public int Status => x.Response.Status;

        public string? RetryAfter => Http1ResponseHead.RetryAfterOf(x.Upstream!.BufferedSpan[..x.ResponseHeadLength]);

        public StreamKind Kind => x.Response.Kind;

        public bool CarriesUsage => x.Response.CarriesUsage;

        /// <summary>The upstream head (and a small body that came with the client's head) in one buffer, sent in one write.</summary>
        public void Prepare(in BackendEntry backend)
        {
            var (head, target) = (x.Head, x.Target = backend.Http1!);
            x.ReturnRequestHead();
            x.RequestHead = HeadBuffers.Rent(2 * head.Length + 512 + x.RequestId.Length
                + target.PathPrefix.Length + target.HostLine.Length + target.AuthLine.Length + (x.InlineBody is null ? 0 : x.InlineLength));
            x.RequestHeadLength = WriteRequestHead(x.RequestHead, head, target, x, x.ClientIp, x.RequestId, x.InlineBody, x.InlineLength);
        }

        public ValueTask SendAsync(CancellationTokenSource timeouts, bool fresh) => forwarder.SendHttp1Async(x, timeouts, fresh);

        /// <summary>Looks for the end of the response head in what was read; an interim 1xx head (RFC 9110 §15.2) is skipped.</summary>
        public bool TakeResponseHead()
        {
            var connection = x.Upstream!;
            var scanned = x.HeadScanned;
            int length;
            while (connection.TryFindHead(ref scanned, out length)
                && Http1ResponseHead.StatusOf(connection.BufferedSpan[..length]) is >= 100 and < 200 and not 101)
            {
                connection.Consume(length);
                scanned = 0;
            }
            x.HeadScanned = scanned;
            if (length == 0)
            {
                return false;
            }
            x.ResponseHeadLength = length;
            x.Response = Http1ResponseHead.Parse(connection.BufferedSpan[..length], x.Head.Method == "HEAD");
            // The request is written upstream: its bytes are not needed any more (a long stream holds
            // none), unless a refusal may send it to another backend (see RetryRefused).
            if (x.Response.Status is not (429 or 503))
            {
                x.ReleaseRequest();
            }
            return true;
        }

        public ValueTask<int> ReceiveAsync(CancellationTokenSource timeouts) => x.Upstream!.ReceiveAsync(timeouts.Token);

        /// <summary>A reused connection, a body-less request and no response byte yet: the backend may have closed it before it saw the request.</summary>
        public bool MayBeStale => x.Reused && x.Head.ContentLength <= 0 && x.Upstream!.Buffered == 0;

        public bool Received(int count)
        {
            if (count > 0)
            {
                x.Upstream!.Received(count);
                return true;
            }
            if (!MayBeStale)
            {
                throw new HttpRequestException(HttpRequestError.ResponseEnded, "The upstream closed the connection before the response head was complete.");
            }
            return false;
        }

        public void Abandon()
        {
            x.Upstream?.Abandon();
            x.Upstream = null;
        }

        public ValueTask<RelayResult> RelayAsync(UsageScanner? usage, CancellationTokenSource timeouts, int attempts)
        {
            // The client's head goes out with the first body bytes (or at once for event streams and empty bodies).
            var connection = x.Upstream!;
            var response = x.Response;
            x.ResponseHead = HeadBuffers.Rent(x.ResponseHeadLength + 512);
            var length = WriteResponseHead(x.ResponseHead, connection.BufferedSpan[..x.ResponseHeadLength], response, x.RequestId, x.Close, attempts);
            connection.Consume(x.ResponseHeadLength);
            x.ResponseBody.Begin(connection, response.Framing, response.BodyLength, response.KeepAlive);
            x.ResponseBody.CompleteIfEmpty();
            return forwarder.RelayBodyAsync(x.Output, x.ResponseBody, response, x.ResponseHead.AsMemory(0, length), usage, timeouts, x.Connection.ConnectionClosed);
        }

        public void End()
        {
            if (x.ResponseHead is { } buffer)
            {
                HeadBuffers.Return(buffer);
                x.ResponseHead = null;
            }
            x.ResponseBody.End();
            x.Upstream = null;
        }
    }

    /// <summary>
    /// Sends an attempt on the raw client: the head (with a small body) in one write, then the rest
    /// of the body. A reused connection the backend had already closed fails the write: then it goes
    /// out on a fresh connection (the response head is awaited by <see cref="ServeAsync"/>, which
    /// also re-sends when such a connection yields no response byte). Completes without waiting
    /// (and without a state machine) unless a connect or the body has to be waited for.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendHttp1Async(Http1Exchange x, CancellationTokenSource timeouts, bool fresh)
    {
        var pool = _pools.For(x.Target!, settings, _budgets, Loops);
        while (true)
        {
            var connection = x.Upstream = await pool.RentAsync(fresh, timeouts.Token).ConfigureAwait(false);
            x.Reused = connection.BeginExchange();
            x.HeadScanned = 0;
            fresh = true;
            try
            {
                await connection.SendAllAsync(x.RequestHead.AsMemory(0, x.RequestHeadLength), timeouts.Token).ConfigureAwait(false);
                break;
            }
            catch (SocketException) when (x.Reused)
            {
                connection.Abandon();
                x.Upstream = null;
            }
        }
        x.BodyStarted = x.Head.ContentLength > 0;
        if (!x.BodyConsumed)
        {
            await CopyRequestBodyAsync(x, x.Upstream, timeouts, settings).ConfigureAwait(false);
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

    /// <summary>
    /// Streams a body that did not come with the head. Reads run on the client's timer, sends on
    /// the backend's (<see cref="ExchangeTimers"/>); a failure reading from the client (a timeout
    /// included) is kept as <see cref="Http1Exchange.ClientReadError"/>. Bytes from the backend
    /// before the body is all sent mean the response began early: the connection is not reused afterwards.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask CopyRequestBodyAsync(Http1Exchange x, Http1Connection connection, CancellationTokenSource timer, GatewaySettings settings)
    {
        var input = x.Input;
        var remaining = x.Head.ContentLength;
        var early = false;
        while (remaining > 0)
        {
            ReadResult result;
            ExchangeTimers.AwaitClient(timer, settings);
            try
            {
                result = await input.ReadAsync(timer.Token).ConfigureAwait(false);
                if (result.Buffer.IsEmpty && result.IsCompleted)
                {
                    throw new IOException($"The client's request body ended {remaining} bytes before its Content-Length.");
                }
            }
            catch (Exception ex)
            {
                x.ClientReadError = ex;
                throw new IOException("Reading the client's request body failed.", ex);
            }
            var buffer = result.Buffer;
            if (buffer.IsEmpty && result.IsCanceled)
            {
                // The server's shutdown asked the connection to close after this request (the
                // ConnectionClosedRequested callback cancels the pending read): the body still comes.
                input.AdvanceTo(buffer.Start);
                continue;
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
        // The request is completely sent: from here on the wait is the backend's.
        x.BodyConsumed = true;
        ExchangeTimers.AwaitUpstream(timer, settings);
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
    internal static int WriteResponseHead(byte[] buffer, ReadOnlySpan<byte> raw, in Http1ResponseHead response, RequestId requestId, bool close, int attempts = 1)
    {
        var w = new ByteWriter(buffer);
        w.Bytes(Http1ResponseHead.StatusLine(response.Status));
        if (!response.HasDate)
        {
            w.Bytes(HttpDateLine.Current);
        }
        WriteRelayedFields(ref w, raw[(HttpAscii.IndexOfCrlf(raw) + 2)..^2], response);
        w.Bytes("X-Request-ID: "u8);
        w.Ascii(requestId);
        w.Bytes("\r\n"u8);
        if (attempts > 1)
        {
            w.Bytes("X-EdgeProxy-Attempts: "u8);
            w.Number(attempts);
            w.Bytes("\r\n"u8);
        }
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

    /// <summary>
    /// The backend's field lines (each with its CRLF, as <see cref="Http1ResponseHead.Parse"/> validated
    /// them) minus the ones not relayed (<see cref="Http1ResponseHead.Relays"/>). The parse already marked
    /// those (<see cref="Http1ResponseHead.DroppedLines"/>): the lines between them go out in one copy
    /// each, and no name is looked up twice.
    /// </summary>
    private static void WriteRelayedFields(ref ByteWriter w, ReadOnlySpan<byte> fields, in Http1ResponseHead response)
    {
        if (response.FieldLines > 64 || response.ConnectionNamesFields)
        {
            WriteRelayedFieldsByName(ref w, fields, response);
            return;
        }
        var (run, at, line) = (0, 0, 0);
        for (var dropped = response.DroppedLines; dropped != 0; dropped &= dropped - 1)
        {
            // Skip to the next dropped line; in a validated head every LF ends a line (after its CR).
            for (var next = BitOperations.TrailingZeroCount(dropped); line < next; line++)
            {
                at = NextLine(fields, at);
            }
            if (at > run)
            {
                w.Bytes(fields[run..at]);
            }
            at = run = NextLine(fields, at);
            line++;
        }
        if (run < fields.Length)
        {
            w.Bytes(fields[run..]);
        }
    }

    /// <summary>Where the line after the one at <paramref name="at"/> starts (the end when none follows).</summary>
    private static int NextLine(ReadOnlySpan<byte> fields, int at)
    {
        var lf = fields[at..].IndexOf((byte)'\n');
        return lf < 0 ? fields.Length : at + lf + 1;
    }

    /// <summary>The rare heads: more lines than <see cref="Http1ResponseHead.DroppedLines"/> holds, or a Connection field naming fields.</summary>
    private static void WriteRelayedFieldsByName(ref ByteWriter w, ReadOnlySpan<byte> fields, in Http1ResponseHead response)
    {
        for (var rest = fields; !rest.IsEmpty;)
        {
            var lineEnd = HttpAscii.IndexOfCrlf(rest);
            var line = lineEnd < 0 ? rest : rest[..lineEnd];
            rest = lineEnd < 0 ? default : rest[(lineEnd + 2)..];
            var name = line[..line.IndexOf((byte)':')];
            if (response.Relays(name) && !(response.ConnectionNamesFields && NamedByConnection(fields, name)))
            {
                w.Bytes(line);
                w.Bytes("\r\n"u8);
            }
        }
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

    /// <summary>
    /// Copies the body to the client as it arrives, each read flushed at once; the head goes out with
    /// the first chunk (or at once for event streams, or alone for an empty body), so a failure
    /// before any body byte can still become an error status. The first read runs under the
    /// first-byte timer, every later one re-arms the idle timer.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<RelayResult> RelayBodyAsync(PipeWriter output, Http1ResponseBody body, Http1ResponseHead response, ReadOnlyMemory<byte> head, UsageScanner? usage, CancellationTokenSource timeouts, CancellationToken clientGone)
    {
        var started = false;
        long firstChunkAt = 0;
        var chunked = response.ChunkedToClient;
        var remaining = response.Framing == Http1Framing.Length ? response.BodyLength : -1;
        try
        {
            if (response.Kind != StreamKind.None && remaining != 0 && response.BodyAllowed)
            {
                Write(output, head.Span);
                started = true;
                if ((await output.FlushAsync(clientGone).ConfigureAwait(false)).IsCompleted)
                {
                    return new RelayResult(StreamCopyOutcome.WriteFailed, true, 0, null);
                }
            }
            int read;
            do
            {
                var headPart = started ? 0 : head.Length;
                var offset = headPart + (chunked ? ChunkPrefix : 0);
                Memory<byte> memory;
                try
                {
                    if (started && response.Kind != StreamKind.None)
                    {
                        // Idle streams wait without holding a buffer (zero-byte read); a timeout or
                        // reset while waiting is the upstream's failure, like one during a read.
                        await body.ReadAsync(Memory<byte>.Empty, timeouts.Token).ConfigureAwait(false);
                    }
                    memory = output.GetMemory(offset + 8192 + 2);
                    read = remaining == 0 || !response.BodyAllowed ? 0
                        : await body.ReadAsync(memory.Slice(offset, Math.Min(memory.Length - offset - 2, RelayChunk)), timeouts.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException)
                {
                    return new RelayResult(StreamCopyOutcome.ReadFailed, started, firstChunkAt, ex);
                }
                if (read > 0)
                {
                    firstChunkAt = firstChunkAt == 0 ? time.GetTimestamp() : firstChunkAt;
                    remaining -= read;   // only a length-framed body counts down to 0; the others stay negative
                    if (remaining != 0)
                    {
                        ExchangeTimers.AwaitNextChunk(timeouts, settings);   // none after the last chunk: nothing more is read
                    }
                    usage?.Observe(memory.Span.Slice(offset, read));
                }
                else if (remaining == 0 || !response.BodyAllowed)
                {
                    firstChunkAt = time.GetTimestamp();   // an empty body: the head is all there is
                }
                CommitChunk(output, memory.Span, head.Span[..headPart], read, chunked);
                started = true;
                if ((await output.FlushAsync(clientGone).ConfigureAwait(false)).IsCompleted)
                {
                    return new RelayResult(StreamCopyOutcome.WriteFailed, true, firstChunkAt, null);
                }
            }
            while (read != 0 && remaining != 0);
            return new RelayResult(StreamCopyOutcome.Completed, true, firstChunkAt, null);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            return new RelayResult(StreamCopyOutcome.WriteFailed, started, firstChunkAt, ex);
        }
    }

    /// <summary>
    /// Commits a chunk read into <paramref name="span"/> behind room for the head and a chunk-size
    /// line: the head (until it went out), the chunk's framing when the client's body is chunked,
    /// and at the end (nothing read) the chunked terminator.
    /// </summary>
    private static void CommitChunk(PipeWriter output, Span<byte> span, ReadOnlySpan<byte> head, int read, bool chunked)
    {
        head.CopyTo(span);
        var total = head.Length;
        if (chunked && read > 0)
        {
            WriteChunkSize(span.Slice(total, ChunkPrefix), read);
            total += ChunkPrefix + read;
            "\r\n"u8.CopyTo(span[total..]);
            total += 2;
        }
        else if (read > 0)
        {
            total += read;
        }
        else if (chunked)
        {
            "0\r\n\r\n"u8.CopyTo(span[total..]);
            total += 5;
        }
        output.Advance(total);
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

    /// <summary>An error frame after the response began, in the body's framing towards the client.</summary>
    private static async ValueTask WriteHttp1FrameAsync(Http1Exchange exchange, byte[] frame)
    {
        try
        {
            var output = exchange.Output;
            if (exchange.Response.ChunkedToClient)
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

    /// <summary>An error answer in the gateway's JSON shape (<see cref="ErrorResponses"/>); false when the client is gone.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> WriteHttp1ErrorAsync(PipeWriter output, Http1RequestHead head, int status, ForwarderError error, string requestId, bool close)
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
            if (ForwarderErrors.RetryAfterSeconds(error) is int seconds)
            {
                w.Bytes("\r\nRetry-After: "u8);
                w.Number(seconds);
            }
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
