using System.Net;
using System.Net.Sockets;
using System.Text;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// MAX_CONNECTIONS means what it says: at most that many requests are in flight to one backend at
/// once, whichever request path carries them. Sixteen concurrent requests — half plain HTTP/1.1
/// (the fast path, when on) and half HTTP/1.0 (always the general path) — meet a backend that
/// holds each one for 150 ms; it must never see more than MAX_CONNECTIONS at once, and with the
/// budget shared it sees exactly that many at the peak. (Before, each path kept its own cap: the
/// backend saw twice the limit.)
/// </summary>
public sealed class MaxConnectionsTests
{
    private const string Key = "k-max";
    private const int Limit = 4;

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task Both_paths_draw_from_one_budget_per_backend(string variant)
    {
        using var backend = new HoldingBackend(TimeSpan.FromMilliseconds(150));
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("held", backend.Url, 1)),
            GatewayVariant.Parse(variant).Apply(new Dictionary<string, string>
            {
                ["BACKEND_API_KEY"] = Key, ["HEALTH_CHECK_INTERVAL"] = "3600", ["MAX_CONNECTIONS"] = Limit.ToString(),
            }));

        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => RawHttp.SendAsync(gateway.Port,
            $"GET /svc/m/held/{i} HTTP/1.{(i % 2 == 0 ? 1 : 0)}\nHost: gw\nAuthorization: Bearer {Key}\nConnection: close", timeout: TimeSpan.FromSeconds(30))));

        Assert.All(responses, r => Assert.True(r.Status == 200, r.ToString()));
        Assert.Equal(16, backend.Served);
        Assert.True(backend.PeakInFlight <= Limit, $"the backend saw {backend.PeakInFlight} requests at once; MAX_CONNECTIONS is {Limit}");
        Assert.Equal(Limit, backend.PeakInFlight);
    }

    /// <summary>Answers every request after holding it for a while, and records how many it held at once.</summary>
    private sealed class HoldingBackend : LoopbackServer
    {
                private readonly TimeSpan _hold;
        private int _inFlight;
        private int _peak;
        private int _served;

        public HoldingBackend(TimeSpan hold)
        {
            _hold = hold;
        }

        public int PeakInFlight => Volatile.Read(ref _peak);

        public int Served => Volatile.Read(ref _served);


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
                        var isHealth = Encoding.ASCII.GetString(buffer, 0, end).StartsWith("GET /health", StringComparison.Ordinal);
                        buffer.AsSpan(end + 4, filled - end - 4).CopyTo(buffer);
                        filled -= end + 4;
                        if (!isHealth)
                        {
                            var now = Interlocked.Increment(ref _inFlight);
                            for (var peak = Volatile.Read(ref _peak); now > peak; peak = Volatile.Read(ref _peak))
                            {
                                Interlocked.CompareExchange(ref _peak, now, peak);
                            }
                            await Task.Delay(_hold, Stopping);   // the backend is busy: pacing, not a wait for a condition
                            Interlocked.Decrement(ref _inFlight);
                            Interlocked.Increment(ref _served);
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

    }
}
