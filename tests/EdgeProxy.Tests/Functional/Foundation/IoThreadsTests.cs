using System.Net;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// IO_THREADS sets how many socket event loops the gateway process runs, from the environment or from
/// `.env`, before anything opens a socket: the epoll transport's "edgeproxy-io-N" threads (TRANSPORT=epoll,
/// the Linux default) and the runtime's ".NET Sockets" threads (TRANSPORT=sockets, and the runtime
/// sockets the health checks and the general path use under either transport).
/// </summary>
public sealed class IoThreadsTests
{
    private static readonly string Json = BackendsJson.For("iosvc", "m", ("b1", "http://127.0.0.1:9", 1));

    [Theory]
    [InlineData(1, false, "epoll")]
    [InlineData(2, false, "epoll")]
    [InlineData(1, true, "epoll")]
    [InlineData(2, false, "sockets")]
    [InlineData(1, true, "sockets")]
    public async Task IO_THREADS_is_the_number_of_socket_event_loops(int ioThreads, bool fromDotEnv, string transport)
    {
        var value = ioThreads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var environment = new Dictionary<string, string> { ["TRANSPORT"] = transport };
        if (!fromDotEnv)
        {
            environment["IO_THREADS"] = value;
        }
        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = Json,
            DotEnv = fromDotEnv ? $"IO_THREADS={value}\n" : null,
            Environment = environment,
        });

        // The runtime creates its event loops lazily, one per newly registered socket in turn: eight
        // separate client connections register far more sockets than there are loops.
        for (var i = 0; i < 8; i++)
        {
            using var client = TestHttp.Create();
            using var response = await client.GetAsync(gateway.BaseUrl + "/health");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        if (transport == "epoll")
        {
            Assert.Equal(ioThreads, Threads(gateway.ProcessId, name => name.StartsWith("edgeproxy-io-", StringComparison.Ordinal)));
            Assert.InRange(Threads(gateway.ProcessId, name => name == ".NET Sockets"), 0, ioThreads);
        }
        else
        {
            Assert.Equal(ioThreads, Threads(gateway.ProcessId, name => name == ".NET Sockets"));
            Assert.Equal(0, Threads(gateway.ProcessId, name => name.StartsWith("edgeproxy-io-", StringComparison.Ordinal)));
        }
    }

    private static int Threads(int pid, Func<string, bool> named)
        => Directory.GetDirectories($"/proc/{pid}/task")
            .Count(task => File.Exists(Path.Combine(task, "comm")) && named(File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n')));
}
