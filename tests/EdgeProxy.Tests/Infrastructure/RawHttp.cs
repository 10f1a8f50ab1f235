using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// HTTP/1.1 over a bare TcpClient: the request goes out byte for byte as the test wrote it (HttpClient
/// would normalise the target and refuse or rewrite hop-by-hop headers), and the response's headers
/// come back exactly as sent. One request per connection.
/// </summary>
internal static class RawHttp
{
    /// <summary>
    /// Sends <paramref name="head"/> (request line and headers; "\n" line ends become CRLF, the blank line
    /// is added) and <paramref name="body"/>, then reads one response (Content-Length, chunked or to EOF).
    /// </summary>
    public static async Task<RawResponse> SendAsync(
        int port, string head, byte[]? body = null, string? sourceAddress = null, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(15));
        using var client = new TcpClient(AddressFamily.InterNetwork) { NoDelay = true };
        if (sourceAddress is not null)
        {
            client.Client.Bind(new IPEndPoint(IPAddress.Parse(sourceAddress), 0));
        }
        await client.ConnectAsync(IPAddress.Loopback, port, cancel.Token);
        var stream = client.GetStream();
        var text = head.Replace("\r\n", "\n").TrimEnd('\n').Replace("\n", "\r\n") + "\r\n\r\n";
        await stream.WriteAsync(Encoding.Latin1.GetBytes(text), cancel.Token);
        if (body is not null)
        {
            await stream.WriteAsync(body, cancel.Token);
        }
        var isHead = text.StartsWith("HEAD ", StringComparison.Ordinal);
        var closing = text.Contains("\r\nConnection: close\r\n", StringComparison.OrdinalIgnoreCase);
        return await ReadResponseAsync(new BufferedReader(stream), isHead, closing, cancel.Token);
    }

    /// <summary>A request head as sent on the wire: "\n" line ends become CRLF and the blank line is added.</summary>
    public static byte[] Head(string head) => Encoding.Latin1.GetBytes(head.Replace("\r\n", "\n").TrimEnd('\n').Replace("\n", "\r\n") + "\r\n\r\n");

    internal static async Task<RawResponse> ReadResponseAsync(BufferedReader reader, bool isHead, bool closing, CancellationToken token)
    {
        var statusLine = await reader.ReadLineAsync(token) ?? throw new IOException("connection closed before a status line");
        var parts = statusLine.Split(' ', 3);
        var status = int.Parse(parts[1]);
        var headers = new List<KeyValuePair<string, string>>();
        while (await reader.ReadLineAsync(token) is { Length: > 0 } line)
        {
            var colon = line.IndexOf(':');
            headers.Add(new(line[..colon].Trim(), line[(colon + 1)..].Trim()));
        }
        var response = new RawResponse(status, statusLine, headers, []);
        if (isHead)
        {
            // A HEAD answer has no body; with `Connection: close` whatever follows on the wire is collected to prove it.
            return closing ? response with { Body = await reader.ReadToEndAsync(token) } : response;
        }
        if (status is 204 or 304 || status < 200)
        {
            return response;
        }
        byte[] body;
        if (response.Header("Transfer-Encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true)
        {
            var buffer = new MemoryStream();
            while (true)
            {
                var sizeLine = await reader.ReadLineAsync(token) ?? throw new IOException("connection closed inside a chunked body");
                var size = Convert.ToInt32(sizeLine.Split(';')[0].Trim(), 16);
                if (size == 0)
                {
                    while (await reader.ReadLineAsync(token) is { Length: > 0 })
                    {
                        // trailers
                    }
                    break;
                }
                buffer.Write(await reader.ReadExactlyAsync(size, token));
                await reader.ReadLineAsync(token);
            }
            body = buffer.ToArray();
        }
        else if (response.Header("Content-Length") is { } length)
        {
            body = await reader.ReadExactlyAsync(int.Parse(length), token);
        }
        else
        {
            body = await reader.ReadToEndAsync(token);
        }
        return response with { Body = body };
    }

    /// <summary>Line and block reads over a stream without over-reading into the caller's hands.</summary>
    internal sealed class BufferedReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[16 * 1024];
        private int _start;
        private int _end;

        private async Task<bool> FillAsync(CancellationToken token)
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length)
            {
                throw new IOException("header line too long");
            }
            var n = await stream.ReadAsync(_buffer.AsMemory(_end), token);
            _end += n;
            return n > 0;
        }

        public async Task<string?> ReadLineAsync(CancellationToken token)
        {
            while (true)
            {
                var index = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
                if (index >= 0)
                {
                    var line = Encoding.Latin1.GetString(_buffer, _start, index - _start).TrimEnd('\r');
                    _start = index + 1;
                    return line;
                }
                if (!await FillAsync(token))
                {
                    return null;
                }
            }
        }

        public async Task<byte[]> ReadExactlyAsync(int count, CancellationToken token)
        {
            var result = new byte[count];
            var copied = 0;
            while (copied < count)
            {
                if (_start == _end && !await FillAsync(token))
                {
                    throw new IOException($"connection closed after {copied} of {count} body bytes");
                }
                var n = Math.Min(count - copied, _end - _start);
                Buffer.BlockCopy(_buffer, _start, result, copied, n);
                _start += n;
                copied += n;
            }
            return result;
        }

        /// <summary>Everything until the peer closes or resets; Reset tells which (an abortive end).</summary>
        public async Task<(byte[] Bytes, bool Reset)> ReadUntilClosedAsync(CancellationToken token)
        {
            var all = new MemoryStream();
            while (true)
            {
                all.Write(_buffer, _start, _end - _start);
                _start = _end;
                try
                {
                    if (!await FillAsync(token))
                    {
                        return (all.ToArray(), false);
                    }
                }
                catch (IOException)
                {
                    return (all.ToArray(), true);
                }
            }
        }

        public async Task<byte[]> ReadToEndAsync(CancellationToken token)
        {
            var all = new MemoryStream();
            do
            {
                all.Write(_buffer, _start, _end - _start);
                _start = _end;
            }
            while (await FillAsync(token));
            return all.ToArray();
        }
    }
}

/// <summary>
/// One kept-alive client connection for several exchanges (sequential or pipelined): responses are
/// read with one persistent buffer, so bytes of the next response are never lost.
/// </summary>
internal sealed class RawConnection : IAsyncDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly RawHttp.BufferedReader _reader;
    private readonly CancellationTokenSource _timeout;

    private RawConnection(TcpClient client, TimeSpan timeout)
    {
        _client = client;
        _stream = client.GetStream();
        _reader = new RawHttp.BufferedReader(_stream);
        _timeout = new CancellationTokenSource(timeout);
    }

    public static async Task<RawConnection> OpenAsync(int port, TimeSpan? timeout = null)
    {
        var client = new TcpClient(AddressFamily.InterNetwork) { NoDelay = true };
        await client.ConnectAsync(IPAddress.Loopback, port);
        return new RawConnection(client, timeout ?? TimeSpan.FromSeconds(20));
    }

    public Task WriteAsync(byte[] bytes) => _stream.WriteAsync(bytes, _timeout.Token).AsTask();

    public Task WriteAsync(string head, byte[]? body = null)
        => WriteAsync(body is null ? RawHttp.Head(head) : [.. RawHttp.Head(head), .. body]);

    public Task<RawResponse> ReadResponseAsync(bool isHead = false) => RawHttp.ReadResponseAsync(_reader, isHead, closing: false, _timeout.Token);

    /// <summary>Everything until the server closes the connection (empty when it closed right after the last response).</summary>
    public Task<byte[]> ReadToEndAsync() => _reader.ReadToEndAsync(_timeout.Token);

    /// <summary>Raw bytes until the server closes or resets the connection, and whether it reset it.</summary>
    public Task<(byte[] Bytes, bool Reset)> ReadUntilClosedAsync() => _reader.ReadUntilClosedAsync(_timeout.Token);

    public ValueTask DisposeAsync()
    {
        _timeout.Dispose();
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>One response as it came off the wire; header names keep their case, lookups ignore it.</summary>
internal sealed record RawResponse(int Status, string StatusLine, IReadOnlyList<KeyValuePair<string, string>> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    /// <summary>The values of every header line named <paramref name="name"/>, joined with ", "; null when absent.</summary>
    public string? Header(string name)
    {
        var values = Headers.Where(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).ToArray();
        return values.Length == 0 ? null : string.Join(", ", values);
    }

    public bool HasHeader(string name) => Headers.Any(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase));

    /// <summary>Status line, headers and body as text, for failure messages and leak scans.</summary>
    public override string ToString()
        => StatusLine + "\n" + string.Join("\n", Headers.Select(h => $"{h.Key}: {h.Value}")) + "\n\n" + BodyText;
}
