using System.Globalization;
using EdgeProxy.Configuration;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Tests.Unit.Configuration;

/// <summary>Contract: process environment over `.env` in the working directory over built-in defaults.</summary>
public sealed class SettingsLoaderTests
{
    private static readonly Dictionary<string, string> NoEnv = new();

    /// <summary>The setting a contract variable lands in, as text (seconds for durations).</summary>
    private static string Read(GatewaySettings s, string variable) => variable switch
    {
        "PORT" => s.Port.ToString(CultureInfo.InvariantCulture),
        "LOG_LEVEL" => s.LogLevel.ToString(),
        "BACKENDS_CONFIG_PATH" => s.BackendsConfigPath,
        "HEALTH_CHECK_INTERVAL" => s.HealthCheckInterval.TotalSeconds.ToString(CultureInfo.InvariantCulture),
        "HEALTH_CHECK_TIMEOUT" => s.HealthCheckTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture),
        "REQUEST_TIMEOUT" => s.RequestTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture),
        "FIRST_BYTE_TIMEOUT" => s.FirstByteTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture),
        "STREAM_IDLE_TIMEOUT" => s.StreamIdleTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture),
        "MAX_CONNECTIONS" => s.MaxConnections.ToString(CultureInfo.InvariantCulture),
        "MAX_KEEPALIVE_CONNECTIONS" => s.MaxKeepAliveConnections.ToString(CultureInfo.InvariantCulture),
        "BACKEND_API_KEY" => s.BackendApiKey,
        "BACKEND_AUTH_MODE" => s.BackendAuthMode.ToString(),
        _ => throw new ArgumentOutOfRangeException(nameof(variable), variable, null),
    };

    /// <summary>variable, contract default, value in .env, value in the process environment (each as read back).</summary>
    public static TheoryData<string, string, string, string, string, string> ContractVariables => new()
    {
        // variable, default (read back), .env raw, .env read back, env raw, env read back
        { "PORT", "8000", "9001", "9001", "9002", "9002" },
        { "LOG_LEVEL", "Information", "DEBUG", "Debug", "ERROR", "Error" },
        { "BACKENDS_CONFIG_PATH", "./config/backends.json", "/etc/a.json", "/etc/a.json", "/srv/b.json", "/srv/b.json" },
        { "HEALTH_CHECK_INTERVAL", "30", "7", "7", "0.5", "0.5" },
        { "HEALTH_CHECK_TIMEOUT", "5", "2", "2", "1.5", "1.5" },
        { "REQUEST_TIMEOUT", "30", "60", "60", "120", "120" },
        { "MAX_CONNECTIONS", "100", "200", "200", "500", "500" },
        { "MAX_KEEPALIVE_CONNECTIONS", "20", "50", "50", "0", "0" },
        { "BACKEND_API_KEY", "", "from-dotenv", "from-dotenv", "from-env", "from-env" },
        { "BACKEND_AUTH_MODE", "Authorization", "x-api-key", "XApiKey", "Authorization", "Authorization" },
    };

    [Theory]
    [MemberData(nameof(ContractVariables))]
    public void Environment_over_dotenv_over_default(string variable, string fallback, string dotenvRaw, string dotenvValue, string envRaw, string envValue)
    {
        using var dir = new UnitFixtures.TempDir();
        Assert.Equal(fallback, Read(SettingsLoader.Load(NoEnv, dir.Path), variable));

        dir.Write(".env", $"{variable}={dotenvRaw}\n");
        Assert.Equal(dotenvValue, Read(SettingsLoader.Load(NoEnv, dir.Path), variable));

        var env = new Dictionary<string, string> { [variable] = envRaw };
        Assert.Equal(envValue, Read(SettingsLoader.Load(env, dir.Path), variable));

        // The environment wins even without a .env.
        File.Delete(Path.Combine(dir.Path, ".env"));
        Assert.Equal(envValue, Read(SettingsLoader.Load(env, dir.Path), variable));
    }

    [Fact]
    public void Defaults_without_env_or_dotenv_match_the_contract()
    {
        using var dir = new UnitFixtures.TempDir();
        var s = SettingsLoader.Load(NoEnv, dir.Path);
        Assert.Equal(8000, s.Port);
        Assert.True(s.Http1FastPath);
        Assert.Equal(LogLevel.Information, s.LogLevel);
        Assert.Equal("./config/backends.json", s.BackendsConfigPath);
        Assert.False(s.BackendsConfigPathExplicit);
        Assert.Equal(TimeSpan.FromSeconds(30), s.HealthCheckInterval);
        Assert.Equal(TimeSpan.FromSeconds(5), s.HealthCheckTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), s.RequestTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), s.FirstByteTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), s.StreamIdleTimeout);
        Assert.Equal(100, s.MaxConnections);
        Assert.Equal(20, s.MaxKeepAliveConnections);
        Assert.Equal("", s.BackendApiKey);
        Assert.Equal(UpstreamAuthMode.Authorization, s.BackendAuthMode);
        Assert.Empty(s.TrustedProxies);
        Assert.Equal(["*"], s.CorsAllowOrigins);
    }

    [Fact]
    public void Seed_readme_dotenv_loads_with_its_inline_comment()
    {
        using var dir = new UnitFixtures.TempDir();
        dir.Write(".env", "PORT=8000\r\nLOG_LEVEL=INFO\r\nBACKEND_API_KEY=your-secret-key-here\r\nBACKEND_AUTH_MODE=Authorization # 或 x-api-key\r\n");
        var s = SettingsLoader.Load(NoEnv, dir.Path);
        Assert.Equal(UpstreamAuthMode.Authorization, s.BackendAuthMode);
        Assert.Equal("your-secret-key-here", s.BackendApiKey);
    }

    [Theory]
    [InlineData("DEBUG", LogLevel.Debug)]
    [InlineData("INFO", LogLevel.Information)]
    [InlineData("WARNING", LogLevel.Warning)]
    [InlineData("ERROR", LogLevel.Error)]
    [InlineData("debug", LogLevel.Debug)]
    [InlineData("Warning", LogLevel.Warning)]
    [InlineData("CRITICAL", LogLevel.Critical)]
    [InlineData("Trace", LogLevel.Trace)]
    [InlineData("Information", LogLevel.Information)]
    [InlineData("Critical", LogLevel.Critical)]
    [InlineData("None", LogLevel.None)]
    [InlineData(" ERROR ", LogLevel.Error)]
    public void Log_level_accepts_python_and_dotnet_names(string raw, LogLevel expected)
    {
        using var dir = new UnitFixtures.TempDir();
        var s = SettingsLoader.Load(new Dictionary<string, string> { ["LOG_LEVEL"] = raw }, dir.Path);
        Assert.Equal(expected, s.LogLevel);
    }

    [Theory]
    [InlineData("Authorization", "Authorization")]
    [InlineData("authorization", "Authorization")]
    [InlineData("Bearer", "Authorization")]
    [InlineData("x-api-key", "XApiKey")]
    [InlineData("X-API-Key", "XApiKey")]
    public void Auth_mode_spellings(string raw, string expected)
    {
        using var dir = new UnitFixtures.TempDir();
        var s = SettingsLoader.Load(new Dictionary<string, string> { ["BACKEND_AUTH_MODE"] = raw }, dir.Path);
        Assert.Equal(expected, s.BackendAuthMode.ToString());
    }

    [Fact]
    public void Request_timeout_is_the_default_of_first_byte_and_stream_idle_timeouts()
    {
        using var dir = new UnitFixtures.TempDir();
        dir.Write(".env", "REQUEST_TIMEOUT=12\n");
        var s = SettingsLoader.Load(NoEnv, dir.Path);
        Assert.Equal(TimeSpan.FromSeconds(12), s.RequestTimeout);
        Assert.Equal(TimeSpan.FromSeconds(12), s.FirstByteTimeout);
        Assert.Equal(TimeSpan.FromSeconds(12), s.StreamIdleTimeout);

        var explicitTimers = SettingsLoader.Load(new Dictionary<string, string> { ["FIRST_BYTE_TIMEOUT"] = "3", ["STREAM_IDLE_TIMEOUT"] = "4" }, dir.Path);
        Assert.Equal(TimeSpan.FromSeconds(12), explicitTimers.RequestTimeout);
        Assert.Equal(TimeSpan.FromSeconds(3), explicitTimers.FirstByteTimeout);
        Assert.Equal(TimeSpan.FromSeconds(4), explicitTimers.StreamIdleTimeout);
    }

    [Fact]
    public void Explicit_backends_config_path_is_flagged()
    {
        using var dir = new UnitFixtures.TempDir();
        dir.Write(".env", "BACKENDS_CONFIG_PATH=./config/backends.json\n");
        Assert.True(SettingsLoader.Load(NoEnv, dir.Path).BackendsConfigPathExplicit);
    }

    [Fact]
    public void Trusted_proxies_accept_addresses_and_cidr_ranges()
    {
        using var dir = new UnitFixtures.TempDir();
        var s = SettingsLoader.Load(new Dictionary<string, string> { ["TRUSTED_PROXIES"] = "10.0.0.0/8, 192.168.1.7 ,::1,fd00::/8" }, dir.Path);
        Assert.Equal(["10.0.0.0/8", "192.168.1.7/32", "::1/128", "fd00::/8"], s.TrustedProxies.Select(n => n.ToString()));
    }

    [Theory]
    [InlineData("on", true)]
    [InlineData("off", false)]
    public void HTTP1_FAST_PATH_switches_the_fast_path(string value, bool expected)
    {
        using var dir = new UnitFixtures.TempDir();
        Assert.Equal(expected, SettingsLoader.Load(new Dictionary<string, string> { ["HTTP1_FAST_PATH"] = value }, dir.Path).Http1FastPath);
    }

    [Fact]
    public void IO_THREADS_defaults_to_the_runtime_choice_and_takes_a_count()
    {
        using var dir = new UnitFixtures.TempDir();
        Assert.Equal(0, SettingsLoader.Load(NoEnv, dir.Path).IoThreads);
        Assert.Equal(1, SettingsLoader.Load(new Dictionary<string, string> { ["IO_THREADS"] = "1" }, dir.Path).IoThreads);
    }

    [Fact]
    public void SHUTDOWN_TIMEOUT_defaults_to_25_seconds_and_takes_seconds_down_to_0()
    {
        using var dir = new UnitFixtures.TempDir();
        Assert.Equal(TimeSpan.FromSeconds(25), SettingsLoader.Load(NoEnv, dir.Path).ShutdownTimeout);
        Assert.Equal(TimeSpan.FromSeconds(2.5), SettingsLoader.Load(new Dictionary<string, string> { ["SHUTDOWN_TIMEOUT"] = "2.5" }, dir.Path).ShutdownTimeout);
        Assert.Equal(TimeSpan.Zero, SettingsLoader.Load(new Dictionary<string, string> { ["SHUTDOWN_TIMEOUT"] = "0" }, dir.Path).ShutdownTimeout);
        var error = Assert.Throws<ConfigException>(() => SettingsLoader.Load(new Dictionary<string, string> { ["SHUTDOWN_TIMEOUT"] = "-1" }, dir.Path));
        Assert.Contains(error.Errors, e => e.Path == "SHUTDOWN_TIMEOUT");
    }

    [Fact]
    public void TRANSPORT_defaults_to_epoll_on_linux_and_takes_sockets()
    {
        using var dir = new UnitFixtures.TempDir();
        Assert.Equal(OperatingSystem.IsLinux(), SettingsLoader.Load(NoEnv, dir.Path).EpollTransport);
        Assert.False(SettingsLoader.Load(new Dictionary<string, string> { ["TRANSPORT"] = "sockets" }, dir.Path).EpollTransport);
        Assert.Equal(OperatingSystem.IsLinux(), SettingsLoader.Load(new Dictionary<string, string> { ["TRANSPORT"] = "EPOLL" }, dir.Path).EpollTransport);
    }

    /// <summary>One row per bad variable: the error names the variable.</summary>
    [Theory]
    [InlineData("PORT", "eighty", "not an integer")]
    [InlineData("PORT", "8000.5", "not an integer")]
    [InlineData("PORT", "65536", "out of range")]
    [InlineData("PORT", "-1", "out of range")]
    [InlineData("LOG_LEVEL", "VERBOSE", "unknown log level")]
    [InlineData("BACKEND_AUTH_MODE", "Basic", "unknown auth mode")]
    [InlineData("HEALTH_CHECK_INTERVAL", "30s", "not a number")]
    [InlineData("HEALTH_CHECK_INTERVAL", "0", "out of range")]
    [InlineData("HEALTH_CHECK_TIMEOUT", "NaN", "not a number")]
    [InlineData("REQUEST_TIMEOUT", "-5", "out of range")]
    [InlineData("REQUEST_TIMEOUT", "Infinity", "not a number")]
    [InlineData("MAX_CONNECTIONS", "0", "out of range")]
    [InlineData("MAX_CONNECTIONS", "lots", "not an integer")]
    [InlineData("MAX_KEEPALIVE_CONNECTIONS", "-1", "out of range")]
    [InlineData("TRUSTED_PROXIES", "10.0.0.0/33", "not an IP address or CIDR")]
    [InlineData("TRUSTED_PROXIES", "10.0.0.1,proxy.local", "not an IP address or CIDR")]
    [InlineData("ON_ALL_UNHEALTHY", "maybe", "not one of")]
    [InlineData("HTTP1_FAST_PATH", "fast", "not one of")]
    [InlineData("IO_THREADS", "-1", "out of range")]
    [InlineData("IO_THREADS", "auto", "not an integer")]
    [InlineData("TRANSPORT", "io_uring", "not one of")]
    [InlineData("EJECTION_MAX_SECONDS", "1", "at least EJECTION_BASE_SECONDS")]
    [InlineData("HEALTH_CHECK_UNHEALTHY_THRESHOLD", "0", "out of range")]
    [InlineData("METRICS_PORT", "70000", "out of range")]
    [InlineData("HTTP2_PORT", "http2", "not an integer")]
    public void Bad_variable_is_named_in_the_error(string variable, string value, string fragment)
    {
        using var dir = new UnitFixtures.TempDir();
        var ex = Assert.Throws<ConfigException>(() => SettingsLoader.Load(new Dictionary<string, string> { [variable] = value }, dir.Path));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(variable, error.Path);
        Assert.Contains(fragment, error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(variable, ex.Message);

        // The same value from .env is refused the same way.
        dir.Write(".env", $"{variable}={value}\n");
        var fromFile = Assert.Throws<ConfigException>(() => SettingsLoader.Load(NoEnv, dir.Path));
        Assert.Equal(variable, Assert.Single(fromFile.Errors).Path);
    }

    [Fact]
    public void All_errors_are_collected_across_env_and_dotenv()
    {
        using var dir = new UnitFixtures.TempDir();
        dir.Write(".env", "MAX_CONNECTIONS=zero\nthis line is broken\nLOG_LEVEL=LOUD\n");
        var env = new Dictionary<string, string>
        {
            ["PORT"] = "99999",
            ["BACKEND_AUTH_MODE"] = "digest",
            ["TRUSTED_PROXIES"] = "not-an-ip",
            ["HEALTH_CHECK_INTERVAL"] = "soon",
        };
        var ex = Assert.Throws<ConfigException>(() => SettingsLoader.Load(env, dir.Path));
        Assert.Equal(
            new[] { ".env:2", "BACKEND_AUTH_MODE", "HEALTH_CHECK_INTERVAL", "LOG_LEVEL", "MAX_CONNECTIONS", "PORT", "TRUSTED_PROXIES" },
            ex.Errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.Contains("7 errors", ex.Message);
    }

    [Fact]
    public void A_bad_dotenv_value_overridden_by_the_environment_is_not_an_error()
    {
        using var dir = new UnitFixtures.TempDir();
        dir.Write(".env", "PORT=not-a-port\n");
        var s = SettingsLoader.Load(new Dictionary<string, string> { ["PORT"] = "8080" }, dir.Path);
        Assert.Equal(8080, s.Port);
    }

    [Fact]
    public void Api_key_values_never_appear_in_errors()
    {
        using var dir = new UnitFixtures.TempDir();
        var env = new Dictionary<string, string> { ["BACKEND_API_KEY"] = "sk-very-secret-123", ["PORT"] = "x" };
        var ex = Assert.Throws<ConfigException>(() => SettingsLoader.Load(env, dir.Path));
        Assert.DoesNotContain("sk-very-secret-123", ex.Message);
    }
}
