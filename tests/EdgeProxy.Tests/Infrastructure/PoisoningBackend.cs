using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A deliberately broken HTTP/1.1 backend on loopback for the pooled-connection leak cases. Every
/// request is answered with its own <c>X-Test-Id</c> echoed in the body (<c>id=…</c>), so a client
/// can tell its answer from anyone else's. Paths under <c>/poison/</c> misbehave the ways a real
/// backend can, always on a connection it keeps open:
/// <list type="bullet">
/// <item><c>/poison/204</c>, <c>/poison/304</c>: a bodiless status, then (in a later TCP segment) a
/// whole extra response, as if it were the body;</item>
/// <item><c>/poison/head</c> (a HEAD request): a Content-Length head, then the "body" bytes, which are an extra response;</item>
/// <item><c>/poison/short-cl</c>: more bytes than its Content-Length, the surplus an extra response;</item>
/// <item><c>/poison/early</c>: answers before reading the request body and then parses that body as
/// the next request (the CL.0 desync): a body that is itself a request gets its own answer.</item>
/// </list>
/// The extra response carries <c>id=POISON</c> (or the injected request's id). <see cref="Surplus"/>
/// counts the extra responses written, so a test can wait until one was sent before going on.
/// </summary>
internal sealed class PoisoningBackend : LoopbackServer
{
    /// <summary>Delay before the surplus goes out: long enough that it is a later TCP segment, after the gateway finished the response.</summary>
    public static readonly TimeSpan SurplusDelay = TimeSpan.FromMilliseconds(30);

    private int _surplus;
    private int _closedAfterSurplus;
    private int _earlyAnswers;

    /// <summary>Extra (unasked-for) responses written so far.</summary>
    public int Surplus => Volatile.Read(ref _surplus);

    /// <summary>Requests to /poison/early answered (before their body was read).</summary>
    public int EarlyAnswers => Volatile.Read(ref _earlyAnswers);

    /// <summary>Connections that carried a surplus and were then closed by the gateway.</summary>
    public int ClosedAfterSurplus => Volatile.Read(ref _closedAfterSurplus);

    public static byte[] Answer(string id, int status = 200)
    {
        var body = "id=" + id;
        return Encoding.ASCII.GetBytes($"HTTP/1.1 {status} OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\n\r\n{body}");
    }


    protected override async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            client.NoDelay = true;
            var stream = client.GetStream();
            var buffer = new byte[64 * 1024];
            var filled = 0;
            var poisoned = false;
            var injectedNext = false;
            try
            {
                while (true)
                {
                    // RFC 9112 §2.2: empty lines before a request line are ignored.
                    var blank = 0;
                    while (filled - blank >= 2 && buffer[blank] == '\r' && buffer[blank + 1] == '\n')
                    {
                        blank += 2;
                    }
                    if (blank > 0)
                    {
                        buffer.AsSpan(blank, filled - blank).CopyTo(buffer);
                        filled -= blank;
                    }
                    var end = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8);
                    if (end < 0)
                    {
                        var read = await stream.ReadAsync(buffer.AsMemory(filled), Stopping);
                        if (read == 0)
                        {
                            if (poisoned)
                            {
                                Interlocked.Increment(ref _closedAfterSurplus);
                            }
                            return;
                        }
                        filled += read;
                        continue;
                    }
                    var head = Encoding.ASCII.GetString(buffer, 0, end);
                    var lines = head.Split("\r\n");
                    var requestLine = lines[0].Split(' ');
                    var (method, target) = (requestLine[0], requestLine.Length > 1 ? requestLine[1] : "/");
                    var id = Field(lines, "X-Test-Id") ?? "none";
                    var length = int.TryParse(Field(lines, "Content-Length"), out var l) ? l : 0;
                    var early = target.EndsWith("/poison/early", StringComparison.Ordinal);
                    // The CL.0 backend ignores the body; everyone else reads it (waiting for all of it).
                    var consumed = end + 4 + (early ? 0 : length);
                    while (filled < consumed)
                    {
                        var read = await stream.ReadAsync(buffer.AsMemory(filled), Stopping);
                        if (read == 0)
                        {
                            return;
                        }
                        filled += read;
                    }
                    buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                    filled -= consumed;

                    var surplus = Answer("POISON");
                    switch (target[(target.LastIndexOf('/') + 1)..])
                    {
                        case "204":
                            await stream.WriteAsync("HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n"u8.ToArray(), Stopping);
                            await SendSurplusAsync(stream, surplus);
                            poisoned = true;
                            break;
                        case "304":
                            await stream.WriteAsync("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"u8.ToArray(), Stopping);
                            await SendSurplusAsync(stream, surplus);
                            poisoned = true;
                            break;
                        case "head" when method == "HEAD":
                            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {surplus.Length}\r\n\r\n"), Stopping);
                            await SendSurplusAsync(stream, surplus);
                            poisoned = true;
                            break;
                        case "short-cl":
                            await stream.WriteAsync(Answer(id), Stopping);
                            await SendSurplusAsync(stream, surplus);
                            poisoned = true;
                            break;
                        case "early":
                            // Answered at once; whatever the gateway sent as the body is parsed as
                            // the next request, a little later (a backend busy with the first one).
                            await stream.WriteAsync(Answer(id), Stopping);
                            Interlocked.Increment(ref _earlyAnswers);
                            await Task.Delay(SurplusDelay, Stopping);
                            injectedNext = length > 0;
                            break;
                        default:
                            await stream.WriteAsync(Answer(id), Stopping);
                            if (injectedNext)
                            {
                                injectedNext = false;
                                poisoned = true;
                                Interlocked.Increment(ref _surplus);
                            }
                            break;
                    }
                }
            }
            catch (Exception)
            {
                // stopping, or the gateway closed the connection
                if (poisoned)
                {
                    Interlocked.Increment(ref _closedAfterSurplus);
                }
            }
        }
    }

    private async Task SendSurplusAsync(NetworkStream stream, byte[] surplus)
    {
        await Task.Delay(SurplusDelay, Stopping);
        await stream.WriteAsync(surplus, Stopping);
        Interlocked.Increment(ref _surplus);
    }

    private static string? Field(string[] lines, string name)
    {
        foreach (var line in lines.AsSpan(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0 && line.AsSpan(0, colon).Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return line[(colon + 1)..].Trim();
            }
        }
        return null;
    }

}
