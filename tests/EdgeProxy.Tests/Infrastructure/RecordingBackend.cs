using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// An HTTP/1.1 server on loopback that keeps the exact bytes of every proxied request it receives
/// (head and body, framing included: Content-Length or chunked, read to the end of the message) and
/// answers each with the bytes of <see cref="Answer"/> (only its head for a HEAD request). Requests
/// without an X-Forwarded-For field are the gateway's health probes, never a proxied request (both
/// paths always add that field): they are answered but not kept.
/// </summary>
internal sealed class RecordingBackend : LoopbackServer
{
    private const int MaxMessage = 4 * 1024 * 1024;

    private readonly ConcurrentQueue<byte[]> _received = new();
    private volatile Answer _answer = Answer.Ok;

    /// <summary>What every request is answered with from now on.</summary>
    public Answer Answer
    {
        get => _answer;
        set => _answer = value;
    }

    /// <summary>The proxied requests received since the last call, oldest first.</summary>
    public List<byte[]> Take()
    {
        var taken = new List<byte[]>();
        while (_received.TryDequeue(out var request))
        {
            taken.Add(request);
        }
        return taken;
    }


    protected override async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var buffer = new byte[64 * 1024];
                var filled = 0;
                while (true)
                {
                    var length = MessageLength(buffer.AsSpan(0, filled));
                    if (length < 0)
                    {
                        if (filled == buffer.Length)
                        {
                            if (buffer.Length >= MaxMessage)
                            {
                                return;
                            }
                            Array.Resize(ref buffer, buffer.Length * 2);
                        }
                        var read = await stream.ReadAsync(buffer.AsMemory(filled), Stopping);
                        if (read == 0)
                        {
                            return;
                        }
                        filled += read;
                        continue;
                    }
                    var message = buffer.AsSpan(0, length).ToArray();
                    buffer.AsSpan(length, filled - length).CopyTo(buffer);
                    filled -= length;
                    var head = Encoding.Latin1.GetString(message, 0, message.AsSpan().IndexOf("\r\n\r\n"u8));
                    if (head.Contains("\r\nX-Forwarded-For:", StringComparison.OrdinalIgnoreCase))
                    {
                        _received.Enqueue(message);
                    }
                    var answer = _answer;
                    var bytes = answer.Bytes;
                    if (head.StartsWith("HEAD ", StringComparison.Ordinal) && bytes.AsSpan().IndexOf("\r\n\r\n"u8) is var end and >= 0)
                    {
                        bytes = bytes[..(end + 4)];
                    }
                    await stream.WriteAsync(bytes, Stopping);
                    if (answer.Close)
                    {
                        client.Client.Shutdown(SocketShutdown.Send);
                        return;
                    }
                }
            }
            catch (Exception)
            {
                // stopping, or the gateway went away
            }
        }
    }

    /// <summary>The length of the complete request at the start of <paramref name="data"/>, or -1 while it is incomplete.</summary>
    internal static int MessageLength(ReadOnlySpan<byte> data)
    {
        var headEnd = data.IndexOf("\r\n\r\n"u8);
        if (headEnd < 0)
        {
            return -1;
        }
        var bodyStart = headEnd + 4;
        long contentLength = 0;
        var chunked = false;
        foreach (var line in Encoding.Latin1.GetString(data[..headEnd]).Split("\r\n").Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0)
            {
                continue;
            }
            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                contentLength = long.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                chunked = value.EndsWith("chunked", StringComparison.OrdinalIgnoreCase);
            }
        }
        if (!chunked)
        {
            return data.Length - bodyStart >= contentLength ? bodyStart + (int)contentLength : -1;
        }
        // RFC 9112 §7.1: chunk-size [; ext] CRLF data CRLF ... 0 CRLF *(trailer CRLF) CRLF
        var at = bodyStart;
        while (true)
        {
            var lineEnd = data[at..].IndexOf("\r\n"u8);
            if (lineEnd < 0)
            {
                return -1;
            }
            var sizeText = Encoding.Latin1.GetString(data.Slice(at, lineEnd)).Split(';')[0].Trim();
            var size = Convert.ToInt32(sizeText, 16);
            at += lineEnd + 2;
            if (size == 0)
            {
                while (true)
                {
                    var trailerEnd = data[at..].IndexOf("\r\n"u8);
                    if (trailerEnd < 0)
                    {
                        return -1;
                    }
                    at += trailerEnd + 2;
                    if (trailerEnd == 0)
                    {
                        return at;
                    }
                }
            }
            if (data.Length < at + size + 2)
            {
                return -1;
            }
            at += size + 2;
        }
    }

}

/// <summary>A backend's answer as raw bytes, and whether the backend then closes the connection.</summary>
internal sealed record Answer(byte[] Bytes, bool Close)
{
    public static readonly Answer Ok = new("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), false);

    public static Answer Of(string raw, bool close = true) => new(Encoding.Latin1.GetBytes(raw), close);
}
