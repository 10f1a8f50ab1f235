using System.Net;
using System.Net.Sockets;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// Bad configuration stops the gateway at start with exit code 2 and a message that
/// names the field (`services.s.models.m.backends[0].weight`) and what is wrong with it.
/// </summary>
public sealed class ConfigErrorTests
{
    private const int ConfigErrorExit = 2;

    private const string Backend0 = "services.s.models.m.backends[0]";

    /// <summary>backends.json with one service `s`, one model `m` and the given backends array (JSON).</summary>
    private static string Config(string backendsArray) => """{"services":{"s":{"models":{"m":{"backends":""" + backendsArray + "}}}}}";

    private const string Good = """{"id":"b1","name":"B1","url":"http://127.0.0.1:9"}""";

    public static TheoryData<string, string, string> BadBackendsFiles => new()
    {
        // file content, expected field path, expected problem
        { Config("""[{"id":"b1","name":"B1","url":"http://127.0.0.1:9","auth_mode":"Basic"}]"""), Backend0 + ".auth_mode", "unknown auth_mode \"Basic\"" },
        { Config($"""[{Good},{Good}]"""), "services.s.models.m.backends[1].id", "duplicate id 'b1'" },
        { Config("""[{"id":"b1","name":"B1","url":"not a url"}]"""), Backend0 + ".url", "is not an absolute http:// or https:// URL" },
        { Config("""[{"id":"b1","name":"B1","url":"ftp://127.0.0.1/x"}]"""), Backend0 + ".url", "is not an absolute http:// or https:// URL" },
        { Config("""[{"id":"b1","name":"B1","url":"http://127.0.0.1:9","weight":0}]"""), Backend0 + ".weight", "expected an integer from 1 to 1000, found 0" },
        { Config("""[{"id":"b1","name":"B1","url":"http://127.0.0.1:9","weight":1.5}]"""), Backend0 + ".weight", "(not an integer)" },
        { Config("""[{"id":"b1","name":"B1","url":"http://127.0.0.1:9","weight":-3}]"""), Backend0 + ".weight", "found -3" },
        { Config("""[{"id":"b1","name":"B1","url":"http://127.0.0.1:9","weight":"2"}]"""), Backend0 + ".weight", "found \"2\"" },
        { Config("[]"), "services.s.models.m.backends", "is empty" },
        { Config("""[{"name":"B1","url":"http://127.0.0.1:9"}]"""), Backend0 + ".id", "is required" },
        { Config("""[{"id":"b1","url":"http://127.0.0.1:9"}]"""), Backend0 + ".name", "is required" },
        { Config("""[{"id":"b1","name":"B1"}]"""), Backend0 + ".url", "is required" },
        { """{"services":{}}""", "services", "no services defined" },
        { """{"services":{"s":{}}}""", "services.s.models", "is required" },
        { """{"services":{"s":{"models":{"m":{"backends":[]}}}}""", "line 1", "invalid JSON" },
        { "{\"services\":\n  {\"s\": nope}}", "line 2", "invalid JSON" },
    };

    /// <summary>
    /// A port another process listens on stops the start with exit code 1 and says so, on both
    /// transports (the epoll transport opens its listening socket through libc, not the runtime).
    /// </summary>
    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task A_port_already_in_use_is_refused_with_a_clear_message(string transport)
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;

        var (exitCode, output) = await GatewayProcess.RunToExitAsync(Config($"[{Good}]"),
            new Dictionary<string, string> { ["PORT"] = port.ToString(), ["TRANSPORT"] = transport });

        Assert.Equal(1, exitCode);
        Assert.Contains($"cannot listen on 127.0.0.1:{port}", output);
        Assert.Contains("address already in use", output, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [MemberData(nameof(BadBackendsFiles))]
    public async Task A_bad_backends_file_is_refused_naming_the_field(string json, string field, string problem)
    {
        var (exitCode, output) = await GatewayProcess.RunToExitAsync(json);

        Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
        AssertNames(output, field, problem);
    }

    [Fact]
    public async Task Every_error_of_a_file_is_listed_at_once()
    {
        var json = """
            {"services":{"s":{"models":{"m":{"backends":[
              {"id":"b1","name":"B1","url":"http://127.0.0.1:9","weight":0},
              {"id":"b1","name":"B2","url":"gopher://x","auth_mode":"nope"}]}}}}}
            """;

        var (exitCode, output) = await GatewayProcess.RunToExitAsync(json);

        Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
        AssertNames(output, Backend0 + ".weight", "found 0");
        AssertNames(output, "services.s.models.m.backends[1].url", "gopher://x");
        AssertNames(output, "services.s.models.m.backends[1].auth_mode", "unknown auth_mode");
    }

    [Fact]
    public async Task A_missing_file_is_refused_naming_the_path()
    {
        var path = Path.Combine(Path.GetTempPath(), "edgeproxy-missing-" + Guid.NewGuid().ToString("N"), "backends.json");

        var (exitCode, output) = await GatewayProcess.RunToExitAsync(null, new Dictionary<string, string> { ["BACKENDS_CONFIG_PATH"] = path });

        Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
        AssertNames(output, path, "cannot read file");
    }

    [Fact]
    public async Task No_file_at_the_default_paths_is_refused_naming_the_default()
    {
        var (exitCode, output) = await GatewayProcess.RunToExitAsync(null);

        Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
        AssertNames(output, "config/backends.json", "cannot read file");
    }

    [Fact]
    public async Task An_unreadable_file_is_refused_naming_the_path()
    {
        // chmod 000 does not stop root; a directory where the file should be cannot be read by anyone.
        var directory = Directory.CreateTempSubdirectory("edgeproxy-unreadable-").FullName;
        try
        {
            var (exitCode, output) = await GatewayProcess.RunToExitAsync(null, new Dictionary<string, string> { ["BACKENDS_CONFIG_PATH"] = directory });

            Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
            AssertNames(output, directory, "cannot read file");
        }
        finally
        {
            Directory.Delete(directory);
        }
    }

    [Theory]
    [InlineData("PORT", "eighty", "'eighty' is not an integer")]
    [InlineData("PORT", "70000", "out of range")]
    [InlineData("REQUEST_TIMEOUT", "soon", "'soon' is not a number")]
    [InlineData("BACKEND_AUTH_MODE", "Basic", "unknown auth mode 'Basic'")]
    [InlineData("LOG_LEVEL", "LOUD", "unknown log level 'LOUD'")]
    [InlineData("TRUSTED_PROXIES", "10.0.0.0/99", "not an IP address or CIDR range")]
    public async Task A_bad_environment_value_is_refused_naming_the_variable(string name, string value, string problem)
    {
        var (exitCode, output) = await GatewayProcess.RunToExitAsync(Config($"[{Good}]"), new Dictionary<string, string> { [name] = value });

        Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
        AssertNames(output, name, problem);
    }

    [Theory]
    [InlineData("HEALTH_CHECK_INTERVAL=often\n", "HEALTH_CHECK_INTERVAL", "'often' is not a number")]
    [InlineData("PORT=8000\nMAX_CONNECTIONS=-1\n", "MAX_CONNECTIONS", "out of range")]
    [InlineData("# comment\nthis line is not an assignment\n", ".env:2", "expected KEY=VALUE")]
    [InlineData("BACKEND_API_KEY=\"unterminated\n", ".env:1", "unterminated quoted value for BACKEND_API_KEY")]
    public async Task A_bad_dotenv_value_is_refused_naming_it(string dotEnv, string field, string problem)
    {
        var (exitCode, output) = await GatewayProcess.RunToExitAsync(Config($"[{Good}]"), dotEnv: dotEnv);

        Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
        AssertNames(output, field, problem);
    }

    [Fact]
    public async Task A_malformed_api_key_is_refused_without_printing_it()
    {
        var json = Config("""[{"id":"b1","name":"B1","url":"http://127.0.0.1:9","api_key":"sk-SECRETPROBE\u0001x"}]""");

        var (exitCode, output) = await GatewayProcess.RunToExitAsync(json);

        Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
        AssertNames(output, Backend0 + ".api_key", "control characters");
        Assert.DoesNotContain("SECRETPROBE", output);
    }

    [Theory]
    [InlineData("models")]
    [InlineData("model")]
    public async Task Check_config_accepts_a_valid_file_in_either_spelling(string modelsKey)
    {
        var json = "{\"services\":{\"s\":{\"" + modelsKey + "\":{\"m\":{\"backends\":[" + Good + "]}}}}}";

        var (exitCode, output) = await GatewayProcess.RunToExitAsync(json, args: ["--check-config"]);

        Assert.True(exitCode == 0, $"exit code {exitCode}:\n{output}");
        Assert.Contains("OK (1 services, 1 models, 1 backends)", output);
    }

    [Fact]
    public async Task Check_config_refuses_a_bad_file_with_exit_2()
    {
        var (exitCode, output) = await GatewayProcess.RunToExitAsync(Config("[]"), args: ["--check-config"]);

        Assert.True(exitCode == ConfigErrorExit, $"exit code {exitCode}:\n{output}");
        AssertNames(output, "services.s.models.m.backends", "is empty");
    }

    /// <summary>One output line names both the field and the problem (not merely both somewhere).</summary>
    private static void AssertNames(string output, string field, string problem)
        => Assert.True(
            output.Split('\n').Any(line => line.Contains(field, StringComparison.Ordinal) && line.Contains(problem, StringComparison.Ordinal)),
            $"no line names '{field}' with '{problem}':\n{output}");
}
