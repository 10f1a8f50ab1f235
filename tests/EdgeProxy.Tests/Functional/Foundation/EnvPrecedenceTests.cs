using System.Net;
using System.Net.Sockets;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// Contract "Configuration": process environment over `.env` over defaults, and
/// backends.json found at ./config/backends.json, else ./backends.json, when BACKENDS_CONFIG_PATH is unset.
/// No backend process is needed: the checks are where the gateway listens, which key it accepts
/// (a 404 for an unknown model comes after authentication) and which file it loaded.
/// </summary>
public sealed class EnvPrecedenceTests
{
    private static readonly string Json = BackendsJson.For("envsvc", "m", ("b1", "http://127.0.0.1:9", 1));

    [Fact]
    public async Task Environment_PORT_overrides_dotenv_PORT_and_dotenv_key_applies()
    {
        var dotEnvPort = FreePort.Get();
        var envPort = FreePort.Get();

        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = Json,
            DotEnv = $"PORT={dotEnvPort}\nBACKEND_API_KEY=dotenv-key-1 # comment\n",
            Environment = new Dictionary<string, string> { ["PORT"] = envPort.ToString() },
        });

        Assert.Equal(envPort, gateway.Port);
        Assert.False(await AcceptsConnectionAsync(dotEnvPort), $".env port {dotEnvPort} is listening too");
        Assert.Equal(HttpStatusCode.NotFound, await StatusWithKeyAsync(gateway, "dotenv-key-1"));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithKeyAsync(gateway, "other-key"));
    }

    [Fact]
    public async Task Environment_key_overrides_dotenv_key_and_dotenv_PORT_applies()
    {
        var dotEnvPort = FreePort.Get();

        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = Json,
            DotEnv = $"export PORT={dotEnvPort}\nBACKEND_API_KEY='dotenv-key-2'\n",
            Environment = new Dictionary<string, string> { ["BACKEND_API_KEY"] = "env-key-2" },
            ExpectedPort = dotEnvPort,
        });

        Assert.Equal(HttpStatusCode.NotFound, await StatusWithKeyAsync(gateway, "env-key-2"));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithKeyAsync(gateway, "dotenv-key-2"));
    }

    [Theory]
    [InlineData("config/backends.json", "./config/backends.json")]
    [InlineData("backends.json", "./backends.json")]
    public async Task Without_BACKENDS_CONFIG_PATH_the_default_locations_are_used(string file, string logged)
    {
        var service = "defsvc" + Guid.NewGuid().ToString("N")[..6];

        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = BackendsJson.For(service, "m", ("b1", "http://127.0.0.1:9", 1)),
            ConfigFile = file,
            SetConfigPath = false,
        });

        Assert.Contains($"\"{service}\"", await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status"));
        await gateway.Output.WaitForLineAsync(l => l.Contains("Configuration loaded from " + logged), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Config_dir_file_wins_over_the_fallback_file()
    {
        await using var gateway = await GatewayProcess.StartAsync(new GatewayOptions
        {
            BackendsJson = BackendsJson.For("primary", "m", ("b1", "http://127.0.0.1:9", 1)),
            ConfigFile = "config/backends.json",
            SetConfigPath = false,
            // The fallback exists too, with another service: it must be ignored.
            ExtraFiles = new Dictionary<string, string> { ["backends.json"] = BackendsJson.For("fallback", "m", ("b1", "http://127.0.0.1:9", 1)) },
        });

        var status = await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status");
        Assert.Contains("\"primary\"", status);
        Assert.DoesNotContain("\"fallback\"", status);
    }

    private static async Task<HttpStatusCode> StatusWithKeyAsync(GatewayProcess gateway, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, gateway.BaseUrl + "/envsvc/nosuch-model/x");
        request.Headers.TryAddWithoutValidation("X-API-Key", key);
        using var response = await gateway.Client.SendAsync(request);
        return response.StatusCode;
    }

    private static async Task<bool> AcceptsConnectionAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await client.ConnectAsync(IPAddress.Loopback, port, cancel.Token);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
