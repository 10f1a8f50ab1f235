using System.Buffers;
using System.Buffers.Text;
using System.Collections.Frozen;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;

namespace EdgeProxy.Forwarding;

/// <summary>
/// One upstream HTTP/1.1 connection: writes a request head (and body) straight from the
/// <see cref="HttpRequestMessage"/> into one buffer and one send, parses the response head with a
/// strict minimal parser (RFC 9112 §2–§6) and hands the body to a <see cref="LeanResponseStream"/>.
/// </summary>
internal sealed class LeanConnection : IDisposable
{
    /// <summary>Response heads larger than this are refused (SocketsHttpHandler's default limit is also 64 KiB).</summary>
    private const int MaxHeadBytes = 64 * 1024;

    private const int InitialBufferSize = 4096;

    private static readonly SearchValues<char> ForbiddenInHeader = SearchValues.Create("\r\n\0");

    /// <summary>Response header names we see all the time: no string allocated for them.</summary>
    private static readonly FrozenDictionary<string, string> KnownNames = FrozenDictionary.ToFrozenDictionary(
        new[]
        {
            "Content-Type", "Content-Length", "Content-Encoding", "Content-Language", "Content-Location", "Content-Disposition",
            "Content-Range", "Content-MD5", "Transfer-Encoding", "Connection", "Keep-Alive", "Date", "Server", "ETag",
            "Cache-Control", "Expires", "Last-Modified", "Allow", "Vary", "Location", "Set-Cookie", "X-Request-ID",
            "Access-Control-Allow-Origin", "X-Accel-Buffering", "Retry-After", "Trailer", "Upgrade", "WWW-Authenticate",
        }.Select(n => KeyValuePair.Create(n, n)),
        StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> KnownNameLookup = KnownNames.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Headers that belong to <see cref="HttpContent.Headers"/> (HttpContentHeaders' known set).</summary>
    private static readonly FrozenSet<string> ContentHeaderNames = FrozenSet.ToFrozenSet(
    [
        "Allow", "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length", "Content-Location",
        "Content-MD5", "Content-Range", "Content-Type", "Expires", "Last-Modified",
    ], StringComparer.OrdinalIgnoreCase);

    private readonly LeanConnectionPool _pool;
    private readonly UpstreamSocket _socket;
    private byte[] _buffer = new byte[InitialBufferSize];
    private int _start;
    private int _end;
    private bool _reused;
    private int _disposed;

    public LeanConnection(LeanConnectionPool pool, UpstreamSocket socket)
    {
        _pool = pool;
        _socket = socket;
    }

    public long IdleSince { get; set; }

    internal UpstreamSocket Socket => _socket;

    /// <summary>Marks the start of an exchange; true when the connection already carried one (so it may be stale).</summary>
    internal bool BeginExchange()
    {
        _handedBack = 0;
        Reused = _reused;
        _reused = true;
        return Reused;
    }

    /// <summary>The current exchange runs on a connection that carried one before (set by <see cref="BeginExchange"/>).</summary>
    internal bool Reused { get; private set; }

    /// <summary>
    /// True when a complete response head is buffered; <paramref name="scanned"/> carries how far
    /// earlier calls looked (the lean client's <see cref="ReadHeadAsync"/> and the fast path both use it).
    /// </summary>
    internal bool TryFindHead(ref int scanned, out int length)
    {
        var window = _buffer.AsSpan(_start, _end - _start);
        var from = Math.Max(0, scanned - 3);
        var end = window[from..].IndexOf("\r\n\r\n"u8);
        if (end >= 0)
        {
            length = from + end + 4;
            return true;
        }
        scanned = window.Length;
        if (window.Length >= MaxHeadBytes)
        {
            throw new HttpRequestException(HttpRequestError.ConfigurationLimitExceeded, "The upstream response head exceeds 64 KiB.");
        }
        length = 0;
        return false;
    }

    /// <summary>Receives into the buffer's free space (the socket's own reusable awaitable: no allocation); pass the count to <see cref="Received"/>.</summary>
    internal ValueTask<int> ReceiveAsync(CancellationToken cancellationToken)
    {
        MakeRoom();
        return _socket.ReceiveAsync(_buffer.AsMemory(_end), cancellationToken);
    }

    internal void Received(int count) => _end += count;

    internal int Buffered => _end - _start;

    /// <summary>An idle keep-alive connection is readable only when the backend closed it (or sent garbage).</summary>
    public bool LooksAlive() => _socket.LooksAlive();

    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var reused = BeginExchange();
        var content = request.Content;
        var method = request.Method;
        var chunkedBody = content is not null && content.Headers.ContentLength is null;

        // 1. Request line and headers in one buffer, one send.
        var head = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            var length = WriteHead(ref head, request, _pool.HostHeader, content, chunkedBody);
            try
            {
                await SendAllAsync(head.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex) when (reused)
            {
                throw new LeanStaleConnectionException(ex);
            }
            catch (SocketException ex)
            {
                throw new HttpRequestException(HttpRequestError.Unknown, "Sending the request upstream failed: " + ex.Message, ex);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(head);
        }

        // 2. The body, streamed (the content decides how: ours copies the client's body as it arrives).
        if (content is not null)
        {
            var body = new LeanRequestBodyStream(this, chunkedBody);
            await content.CopyToAsync(body, cancellationToken).ConfigureAwait(false);
            await body.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }

        // 3. The response head; interim 1xx responses are skipped (RFC 9110 §15.2).
        while (true)
        {
            var headLength = await ReadHeadAsync(reused && content is null, cancellationToken).ConfigureAwait(false);
            var response = ParseHead(request, headLength, out var parsed);
            _start += headLength;
            if (response is null)
            {
                continue;
            }
            var stream = new LeanResponseStream(this, parsed.Framing, parsed.BodyLength, parsed.KeepAlive);
            var responseContent = new LeanResponseContent(stream);
            MoveContentHeaders(responseContent);
            response.Content = responseContent;
            stream.CompleteIfEmpty();
            return response;
        }
    }

    private static int WriteHead(ref byte[] buffer, HttpRequestMessage request, string hostHeader, HttpContent? content, bool chunkedBody)
    {
        var writer = new HeadWriter(buffer);
        var uri = request.RequestUri!;
        writer.Append(request.Method.Method);
        writer.Append(" ");
        writer.Append(uri.PathAndQuery);
        writer.Append(" HTTP/1.1\r\nHost: ");
        writer.Append(request.Headers.NonValidated.TryGetValues("Host", out var host) ? host.ToString() : hostHeader);
        writer.Append("\r\n");
        foreach (var header in request.Headers.NonValidated)
        {
            if (header.Key.Equals("Host", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            writer.Header(header.Key, header.Value);
        }
        if (content is not null)
        {
            foreach (var header in content.Headers.NonValidated)
            {
                if (!header.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    writer.Header(header.Key, header.Value);
                }
            }
            // The length may be computed by the content rather than set as a header (RFC 9112 §6.2, §6.1).
            if (content.Headers.ContentLength is long length)
            {
                writer.Append("Content-Length: ");
                writer.Append(length.ToString(System.Globalization.CultureInfo.InvariantCulture));
                writer.Append("\r\n");
            }
            else if (chunkedBody)
            {
                writer.Append("Transfer-Encoding: chunked\r\n");
            }
        }
        else if (request.Method == HttpMethod.Post || request.Method == HttpMethod.Put)
        {
            // RFC 9110 §8.6: a body-expecting method without a body says so.
            writer.Append("Content-Length: 0\r\n");
        }
        writer.Append("\r\n");
        buffer = writer.Buffer;
        return writer.Length;
    }

    /// <summary>Builds the head with Latin-1 bytes (RFC 9110 §5.5), growing a pooled buffer when needed.</summary>
    private struct HeadWriter(byte[] buffer)
    {
        public byte[] Buffer = buffer;
        public int Length;

        public void Append(string? text)
        {
            if (text is null)
            {
                return;
            }
            Ensure(text.Length);
            foreach (var c in text)
            {
                if (c > 0xFF)
                {
                    throw new HttpRequestException(HttpRequestError.Unknown, "Request header value contains non-Latin-1 characters.");
                }
                Buffer[Length++] = (byte)c;
            }
        }

        public void Header(string name, HeaderStringValues values)
        {
            Append(name);
            Append(": ");
            var first = true;
            // RFC 9110 §5.3: repeated fields combine with commas; Cookie is the exception (RFC 6265 §5.4).
            var separator = name.Equals("Cookie", StringComparison.OrdinalIgnoreCase) ? "; " : ", ";
            foreach (var value in values)
            {
                if (value.AsSpan().ContainsAny(ForbiddenInHeader))
                {
                    throw new HttpRequestException(HttpRequestError.Unknown, $"Request header '{name}' contains a line break.");
                }
                if (!first)
                {
                    Append(separator);
                }
                Append(value);
                first = false;
            }
            Append("\r\n");
        }

        private void Ensure(int more)
        {
            if (Length + more <= Buffer.Length)
            {
                return;
            }
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(Buffer.Length * 2, Length + more));
            Buffer.AsSpan(0, Length).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(Buffer);
            Buffer = bigger;
        }
    }

    /// <summary>Reads until the buffer holds a complete head; returns its length including the blank line.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadHeadAsync(bool mayBeStale, CancellationToken cancellationToken)
    {
        var scanned = 0;
        while (true)
        {
            if (TryFindHead(ref scanned, out var length))
            {
                return length;
            }
            int read;
            try
            {
                read = await ReceiveAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex) when (mayBeStale && _end == _start)
            {
                throw new LeanStaleConnectionException(ex);
            }
            catch (SocketException ex)
            {
                throw new HttpRequestException(HttpRequestError.ResponseEnded, "Reading the upstream response failed: " + ex.Message, ex);
            }
            if (read == 0)
            {
                if (mayBeStale && _end == _start)
                {
                    throw new LeanStaleConnectionException(null);
                }
                throw new HttpRequestException(HttpRequestError.ResponseEnded, "The upstream closed the connection before the response head was complete.");
            }
            Received(read);
        }
    }

    /// <summary>Moves unread bytes to the front; grows the buffer (up to the head limit) when it is full.</summary>
    internal void MakeRoom()
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxHeadBytes + 8));
        }
    }

    /// <summary>
    /// Parses a response head; null for an interim (1xx) response. Validation and framing are
    /// <see cref="Http1ResponseHead"/>'s (shared with the fast path); this only builds the header
    /// objects HttpClient's callers expect.
    /// </summary>
    private HttpResponseMessage? ParseHead(HttpRequestMessage request, int headLength, out Http1ResponseHead head)
    {
        var bytes = _buffer.AsSpan(_start, headLength);
        var status = Http1ResponseHead.StatusOf(bytes);
        if (status is >= 100 and < 200 and not 101)
        {
            head = default;
            return null;
        }
        head = Http1ResponseHead.Parse(bytes, request.Method == HttpMethod.Head);
        var lineEnd = HttpAscii.IndexOfCrlf(bytes);
        var statusLine = bytes[..lineEnd];
        var response = new HttpResponseMessage((HttpStatusCode)status)
        {
            Version = statusLine[7] == (byte)'0' ? HttpVersion.Version10 : HttpVersion.Version11,
            RequestMessage = request,
        };
        if (statusLine.Length > 13)
        {
            response.ReasonPhrase = Encoding.Latin1.GetString(statusLine[13..]);
        }
        var fields = bytes[(lineEnd + 2)..^2];
        Span<char> nameChars = stackalloc char[128];
        while (!fields.IsEmpty)
        {
            lineEnd = HttpAscii.IndexOfCrlf(fields);
            var line = lineEnd < 0 ? fields : fields[..lineEnd];
            fields = lineEnd < 0 ? default : fields[(lineEnd + 2)..];
            var colon = line.IndexOf((byte)':');
            var nameBytes = line[..colon];
            var valueBytes = HttpAscii.TrimOws(line[(colon + 1)..]);
            string name;
            if (nameBytes.Length <= nameChars.Length)
            {
                var chars = nameChars[..Encoding.Latin1.GetChars(nameBytes, nameChars)];
                name = KnownNameLookup.TryGetValue(chars, out var known) ? known : new string(chars);
            }
            else
            {
                name = Encoding.Latin1.GetString(nameBytes);
            }
            var value = valueBytes.IsEmpty ? "" : Encoding.Latin1.GetString(valueBytes);
            if (!response.Headers.TryAddWithoutValidation(name, value))
            {
                // Content headers go to the content; collected on a placeholder until it exists.
                (_pendingContentHeaders ??= []).Add(KeyValuePair.Create(name, value));
            }
        }
        return response;
    }

    private List<KeyValuePair<string, string>>? _pendingContentHeaders;

    /// <summary>Content headers (Content-Type, Content-Length, …) parsed before the content object existed.</summary>
    private void MoveContentHeaders(HttpContent content)
    {
        if (_pendingContentHeaders is { } pending)
        {
            foreach (var (name, value) in pending)
            {
                content.Headers.TryAddWithoutValidation(name, value);
            }
            pending.Clear();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    internal async ValueTask SendAllAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            var sent = await _socket.SendAsync(data, cancellationToken).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    /// <summary>Copies buffered (already received) bytes out; returns how many.</summary>
    internal int TakeBuffered(Span<byte> destination)
    {
        var n = Math.Min(destination.Length, _end - _start);
        _buffer.AsSpan(_start, n).CopyTo(destination);
        _start += n;
        return n;
    }

    internal ReadOnlySpan<byte> BufferedSpan => _buffer.AsSpan(_start, _end - _start);

    internal void Consume(int count) => _start += count;

    /// <summary>Receives more bytes into the connection buffer; 0 at end of stream.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<int> FillAsync(CancellationToken cancellationToken)
    {
        MakeRoom();
        var read = await _socket.ReceiveAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
        _end += read;
        return read;
    }

    /// <summary>The body ended cleanly: back to the pool when the connection can carry another exchange.</summary>
    internal void Release(bool keepAlive)
    {
        if (Interlocked.Exchange(ref _handedBack, 1) != 0)
        {
            return;   // already back (each exchange frees its pool slot exactly once)
        }
        if (keepAlive && _start == _end)
        {
            _start = _end = 0;
            _pool.Return(this);
        }
        else
        {
            // Bytes after the end of the response, or the backend asked to close: never reuse.
            _pool.Discard(this);
        }
    }

    internal void Abandon()
    {
        if (Interlocked.Exchange(ref _handedBack, 1) == 0)
        {
            _pool.Discard(this);
        }
    }

    private int _handedBack;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _socket.Dispose();
        }
    }
}

internal enum LeanFraming
{
    Length,
    Chunked,
    UntilClose,
}
