using System.Net;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// IO_THREADS sets how many socket event loops the gateway process runs (the runtime's ".NET Sockets"
/// threads), from the environment or from `.env`, before anything opens a socket.
/// </summary>
public sealed class IoThreadsTests
{
    private static readonly string Json = BackendsJson.For("iosvc", "m", ("b1", "http://127.0.0.1:9", 1));

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(1, true)]
    public async Task IO_THREADS_is_the_number_of_socket_event_loops(int ioThreads, bool fromDotEnv)
    {
        var value = ioThreads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = Json,
            DotEnv = fromDotEnv ? $"IO_THREADS={value}\n" : null,
            Environment = fromDotEnv ? null : new Dictionary<string, string> { ["IO_THREADS"] = value },
        });

        // The runtime creates its event loops lazily, one per newly registered socket in turn: eight
        // separate client connections register far more sockets than there are loops.
        for (var i = 0; i < 8; i++)
        {
            using var client = TestHttp.Create();
            using var response = await client.GetAsync(gateway.BaseUrl + "/health");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(ioThreads, SocketThreads(gateway.ProcessId));
    }

    private static int SocketThreads(int pid)
        => Directory.GetDirectories($"/proc/{pid}/task")
            .Count(task => File.Exists(Path.Combine(task, "comm")) && File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n') == ".NET Sockets");
}
