using System.Net.Sockets;
using System.Text;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A backend that is busy: it holds every request (health checks excepted) for a fixed time, or
/// until <see cref="Release"/>, then answers 200 "ok"; it records how many it held at once.
/// </summary>
internal sealed class HoldingBackend : LoopbackServer
{
    private readonly TimeSpan? _hold;
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inFlight;
    private int _peak;
    private int _served;

    /// <param name="hold">How long each request is held; null: until <see cref="Release"/>.</param>
    public HoldingBackend(TimeSpan? hold = null)
    {
        _hold = hold;
    }

    public int InFlight => Volatile.Read(ref _inFlight);

    public int PeakInFlight => Volatile.Read(ref _peak);

    public int Served => Volatile.Read(ref _served);

    /// <summary>
    /// When set, `GET /metrics` answers as a vLLM engine with this many slots would: the requests it
    /// holds up to this many are running, the rest waiting.
    /// </summary>
    public int? EngineSlots { get; init; }

    /// <summary>`GET /metrics` requests answered.</summary>
    public int MetricsReads => Volatile.Read(ref _metricsReads);

    private int _metricsReads;

    /// <summary>Answers the held requests and every later one at once.</summary>
    public void Release() => _released.TrySetResult();

    protected override async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var buffer = new byte[16 * 1024];
                var filled = 0;
                while (true)
                {
                    var end = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8);
                    if (end < 0)
                    {
                        var read = await stream.ReadAsync(buffer.AsMemory(filled), Stopping);
                        if (read == 0)
                        {
                            return;
                        }
                        filled += read;
                        continue;
                    }
                    var head = Encoding.ASCII.GetString(buffer, 0, end);
                    var isHealth = head.StartsWith("GET /health", StringComparison.Ordinal);
                    buffer.AsSpan(end + 4, filled - end - 4).CopyTo(buffer);
                    filled -= end + 4;
                    if (head.StartsWith("GET /metrics ", StringComparison.Ordinal) && !head.Contains("X-Forwarded-For", StringComparison.Ordinal))
                    {
                        if (EngineSlots is not int slots)
                        {
                            await stream.WriteAsync("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"u8.ToArray(), Stopping);
                            continue;
                        }
                        Interlocked.Increment(ref _metricsReads);
                        var held = InFlight;
                        var text = $"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{model_name=\"m\"}} {Math.Min(held, slots)}.0\n"
                            + $"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{model_name=\"m\"}} {Math.Max(0, held - slots)}.0\n";
                        await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {text.Length}\r\n\r\n{text}"), Stopping);
                        continue;
                    }
                    if (!isHealth)
                    {
                        await HoldAsync();
                    }
                    await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), Stopping);
                }
            }
            catch (Exception)
            {
                // stopping, or the gateway closed the connection
            }
        }
    }

    private async Task HoldAsync()
    {
        var now = Interlocked.Increment(ref _inFlight);
        for (var peak = Volatile.Read(ref _peak); now > peak; peak = Volatile.Read(ref _peak))
        {
            Interlocked.CompareExchange(ref _peak, now, peak);
        }
        try
        {
            // The backend is busy: pacing, or the test's gate — not a wait for a condition.
            await (_hold is { } hold ? Task.Delay(hold, Stopping) : _released.Task.WaitAsync(Stopping));
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
        Interlocked.Increment(ref _served);
    }
}
