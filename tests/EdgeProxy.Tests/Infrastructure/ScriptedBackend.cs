using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A real HTTP/1.1 server on loopback for cases the test backend process cannot script: it reads
/// each request (head and Content-Length body), answers with the exact bytes of
/// <see cref="Answer"/>, and then keeps the connection, closes it at once, or closes it after
/// <see cref="CloseAfter"/> without a word (as backends with a short keep-alive timeout do).
/// </summary>
internal sealed class ScriptedBackend : LoopbackServer
{
    private int _requests;

    /// <summary>The bytes written for every request, and whether the connection then closes at once.</summary>
    public (byte[] Bytes, bool Close) Answer { get; set; } = ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"u8.ToArray(), false);

    /// <summary>When set, each connection is closed this long after its answer, unannounced.</summary>
    public TimeSpan? CloseAfter { get; set; }

    /// <summary>Requests answered with <see cref="Answer"/> (with <see cref="HealthyChecks"/>, not the active checks).</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Active checks (`GET /health`) get 200 and are not counted, so a backend that refuses every request stays healthy.</summary>
    public bool HealthyChecks { get; init; }

    /// <summary>Keep each answered request's body (<see cref="Bodies"/>).</summary>
    public bool KeepBodies { get; set; }

    /// <summary>The bodies of the requests answered while <see cref="KeepBodies"/> was on, in order.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Bodies { get; } = new();


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
                    var end = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8);
                    var length = end < 0 ? 0 : ContentLength(Encoding.ASCII.GetString(buffer, 0, end));
                    if (end < 0 || filled < end + 4 + length)
                    {
                        var read = await stream.ReadAsync(buffer.AsMemory(filled), Stopping);
                        if (read == 0)
                        {
                            return;
                        }
                        filled += read;
                        continue;
                    }
                    var check = HealthyChecks && buffer.AsSpan(0, end).StartsWith("GET /health "u8);
                    // The gateway reads a busy backend's engine metrics: this backend has none (not a request to count).
                    var metrics = buffer.AsSpan(0, end).StartsWith("GET /metrics "u8) && buffer.AsSpan(0, end).IndexOf("X-Forwarded-For"u8) < 0;
                    var consumed = end + 4 + length;
                    if (KeepBodies && !check && !metrics)
                    {
                        Bodies.Enqueue(Encoding.UTF8.GetString(buffer, end + 4, length));
                    }
                    buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                    filled -= consumed;
                    if (metrics)
                    {
                        await stream.WriteAsync("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"u8.ToArray(), Stopping);
                        continue;
                    }
                    if (check)
                    {
                        await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), Stopping);
                        continue;
                    }
                    Interlocked.Increment(ref _requests);
                    var (bytes, close) = Answer;
                    await stream.WriteAsync(bytes, Stopping);
                    if (close)
                    {
                        client.Client.Shutdown(SocketShutdown.Send);
                        return;
                    }
                    if (CloseAfter is { } delay)
                    {
                        await Task.Delay(delay, Stopping);
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

    private static int ContentLength(string head)
    {
        var line = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        return line is null ? 0 : int.Parse(line["Content-Length:".Length..].Trim());
    }

}
