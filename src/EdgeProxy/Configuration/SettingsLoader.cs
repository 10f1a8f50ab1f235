using System.Collections;
using System.Globalization;
using System.Net;
using System.Numerics;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Configuration;

/// <summary>Builds <see cref="GatewaySettings"/> from the environment and `.env`, collecting every error.</summary>
internal static class SettingsLoader
{
    /// <summary>Loads settings: <paramref name="environment"/> over the `.env` in <paramref name="workingDirectory"/> over defaults.</summary>
    public static GatewaySettings Load(IReadOnlyDictionary<string, string> environment, string workingDirectory)
    {
        var errors = new List<ConfigError>();
        var merged = MergeSources(environment, workingDirectory, errors);
        var settings = ReadSettings(merged, errors);
        CheckCombinations(settings, errors);
        if (errors.Count > 0)
        {
            throw new ConfigException("environment/.env", errors);
        }
        return settings;
    }

    /// <summary>The process environment as <see cref="Load"/> takes it (start-up and `--healthcheck` alike).</summary>
    public static Dictionary<string, string> ProcessEnvironment()
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            environment[(string)entry.Key] = (string?)entry.Value ?? "";
        }
        return environment;
    }

    /// <summary>The `.env` file's values, then the environment's on top; `.env` syntax errors go to <paramref name="errors"/>.</summary>
    private static Dictionary<string, string> MergeSources(IReadOnlyDictionary<string, string> environment, string workingDirectory, List<ConfigError> errors)
    {
        var merged = new Dictionary<string, string>(StringComparer.Ordinal);
        var envPath = Path.Combine(workingDirectory, ".env");
        if (File.Exists(envPath))
        {
            string text;
            try
            {
                text = File.ReadAllText(envPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new ConfigException(".env", [new ConfigError(envPath, $"cannot read: {ex.Message}")]);
            }
            foreach (var (k, v) in EnvFile.Parse(text, ".env", errors))
            {
                merged[k] = v;
            }
        }
        foreach (var (k, v) in environment)
        {
            merged[k] = v;
        }
        return merged;
    }

    /// <summary>Reads each setting on its own, falling back to its default; bad values go to <paramref name="errors"/>.</summary>
    private static GatewaySettings ReadSettings(Dictionary<string, string> merged, List<ConfigError> errors)
    {
        var reader = new Reader(merged, errors);
        var d = Defaults;
        var requestTimeout = reader.Seconds("REQUEST_TIMEOUT", d.RequestTimeout, min: 0.001);
        return new GatewaySettings
        {
            Port = reader.Int("PORT", d.Port, 0, 65535),
            Host = reader.String("HOST", d.Host),
            LogLevel = reader.LogLevel("LOG_LEVEL", d.LogLevel),
            BackendsConfigPath = reader.String("BACKENDS_CONFIG_PATH", d.BackendsConfigPath),
            BackendsConfigPathExplicit = merged.ContainsKey("BACKENDS_CONFIG_PATH"),
            HealthCheckInterval = reader.Seconds("HEALTH_CHECK_INTERVAL", d.HealthCheckInterval, min: 0.05),
            HealthCheckTimeout = reader.Seconds("HEALTH_CHECK_TIMEOUT", d.HealthCheckTimeout, min: 0.01),
            UnhealthyThreshold = reader.Int("HEALTH_CHECK_UNHEALTHY_THRESHOLD", d.UnhealthyThreshold, 1, 100),
            HealthyThreshold = reader.Int("HEALTH_CHECK_HEALTHY_THRESHOLD", d.HealthyThreshold, 1, 100),
            RequestTimeout = requestTimeout,
            ConnectTimeout = reader.Seconds("CONNECT_TIMEOUT", requestTimeout < d.ConnectTimeout ? requestTimeout : d.ConnectTimeout, min: 0.001),
            FirstByteTimeout = reader.Seconds("FIRST_BYTE_TIMEOUT", requestTimeout, min: 0.001),
            StreamIdleTimeout = reader.Seconds("STREAM_IDLE_TIMEOUT", requestTimeout, min: 0.001),
            ClientBodyTimeout = reader.Seconds("CLIENT_BODY_TIMEOUT", requestTimeout, min: 0.001),
            MaxConnections = reader.Int("MAX_CONNECTIONS", d.MaxConnections, 1, 100_000),
            MaxAttempts = reader.Int("MAX_ATTEMPTS", d.MaxAttempts, 1, 64),
            RetryBufferBytes = reader.Int("RETRY_BUFFER_KB", d.RetryBufferBytes / 1024, 0, 1024 * 1024) * 1024,
            MaxKeepAliveConnections = reader.Int("MAX_KEEPALIVE_CONNECTIONS", d.MaxKeepAliveConnections, 0, 100_000),
            Http1FastPath = reader.Choice("HTTP1_FAST_PATH", "on", ["on", "off"]) == "on",
            IoThreads = reader.Int("IO_THREADS", d.IoThreads, 0, 1024),
            EpollTransport = reader.Choice("TRANSPORT", OperatingSystem.IsLinux() ? "epoll" : "sockets", OperatingSystem.IsLinux() ? ["epoll", "sockets"] : ["sockets"]) == "epoll",
            BackendApiKey = reader.String("BACKEND_API_KEY", d.BackendApiKey),
            BackendAuthMode = reader.AuthMode("BACKEND_AUTH_MODE", d.BackendAuthMode),
            TrustedProxies = reader.Networks("TRUSTED_PROXIES"),
            CorsAllowOrigins = reader.List("CORS_ALLOW_ORIGINS", d.CorsAllowOrigins),
            FailFastWhenAllUnhealthy = reader.Choice("ON_ALL_UNHEALTHY", "try", ["try", "fail"]) == "fail",
            PassiveFailureThreshold = reader.Int("PASSIVE_FAILURE_THRESHOLD", d.PassiveFailureThreshold, 1, 10_000),
            EjectionBase = reader.Seconds("EJECTION_BASE_SECONDS", d.EjectionBase, min: 0.01),
            EjectionMax = reader.Seconds("EJECTION_MAX_SECONDS", d.EjectionMax, min: 0.01),
            MaxEjectionPercent = reader.Double("MAX_EJECTION_PERCENT", d.MaxEjectionPercent, 0, 100),
            SlowStart = reader.Seconds("SLOW_START_SECONDS", d.SlowStart, min: 0),
            MaxRequestBodySize = (long)(reader.Double("MAX_REQUEST_BODY_MB", d.MaxRequestBodySize / (1024.0 * 1024), 0.001, 1_000_000) * 1024 * 1024),
            MetricsKey = reader.String("METRICS_KEY", d.MetricsKey),
            MetricsPort = reader.Int("METRICS_PORT", d.MetricsPort, 0, 65535),
            Http2Port = reader.Int("HTTP2_PORT", d.Http2Port, 0, 65535),
            ShutdownTimeout = reader.Seconds("SHUTDOWN_TIMEOUT", d.ShutdownTimeout, min: 0),
            WatchConfig = reader.Choice("WATCH_CONFIG", "true", ["true", "false", "1", "0"]) is "true" or "1",
            TlsCertFile = reader.String("TLS_CERT_FILE", d.TlsCertFile),
            TlsKeyFile = reader.String("TLS_KEY_FILE", d.TlsKeyFile),
            TlsPort = reader.Int("TLS_PORT", d.TlsPort, 0, 65535),
        };
    }

    /// <summary>The defaults <see cref="GatewaySettings"/> declares, read here rather than restated (the choices keep their spelling).</summary>
    private static readonly GatewaySettings Defaults = new();

    /// <summary>Rules that involve more than one setting, checked after each has been read on its own.</summary>
    private static void CheckCombinations(GatewaySettings settings, List<ConfigError> errors)
    {
        if (settings.EjectionMax < settings.EjectionBase)
        {
            errors.Add(new ConfigError("EJECTION_MAX_SECONDS", "must be at least EJECTION_BASE_SECONDS"));
        }
        if ((settings.TlsCertFile.Length > 0) != (settings.TlsKeyFile.Length > 0))
        {
            errors.Add(new ConfigError(settings.TlsCertFile.Length > 0 ? "TLS_KEY_FILE" : "TLS_CERT_FILE", "is required when the other of TLS_CERT_FILE and TLS_KEY_FILE is set"));
        }
        if (settings.TlsPort > 0 && settings.TlsCertFile.Length == 0)
        {
            errors.Add(new ConfigError("TLS_PORT", "needs TLS_CERT_FILE and TLS_KEY_FILE"));
        }
        if (settings.TlsPort > 0 && settings.TlsPort == settings.Port)
        {
            errors.Add(new ConfigError("TLS_PORT", "must differ from PORT (leave it at 0 to terminate TLS on PORT)"));
        }
    }

    private sealed class Reader(Dictionary<string, string> values, List<ConfigError> errors)
    {
        private bool TryGet(string name, out string value)
        {
            if (values.TryGetValue(name, out var v) && v.Trim().Length > 0)
            {
                value = v.Trim();
                return true;
            }
            value = "";
            return false;
        }

        public string String(string name, string fallback) => values.TryGetValue(name, out var v) ? v.Trim() : fallback;

        public int Int(string name, int fallback, int min, int max) => Number(name, fallback, min, max, NumberStyles.Integer, "an integer");

        public double Double(string name, double fallback, double min, double max) => Number(name, fallback, min, max, NumberStyles.Float, "a number");

        /// <summary>A finite number in [min, max]; the error echoes the value as it was written.</summary>
        private T Number<T>(string name, T fallback, T min, T max, NumberStyles style, string kind)
            where T : INumber<T>
        {
            if (!TryGet(name, out var raw))
            {
                return fallback;
            }
            if (!T.TryParse(raw, style, CultureInfo.InvariantCulture, out var value) || !T.IsFinite(value))
            {
                errors.Add(new ConfigError(name, $"'{raw}' is not {kind}"));
                return fallback;
            }
            if (value < min || value > max)
            {
                errors.Add(new ConfigError(name, $"{raw} is out of range {min}..{max}"));
            }
            return value;
        }

        public TimeSpan Seconds(string name, TimeSpan fallback, double min) => TimeSpan.FromSeconds(Double(name, fallback.TotalSeconds, min, 86_400 * 7));

        public string Choice(string name, string fallback, string[] allowed)
        {
            if (!TryGet(name, out var raw))
            {
                return fallback;
            }
            var lower = raw.ToLowerInvariant();
            if (Array.IndexOf(allowed, lower) < 0)
            {
                errors.Add(new ConfigError(name, $"'{raw}' is not one of: {string.Join(", ", allowed)}"));
                return fallback;
            }
            return lower;
        }

        public UpstreamAuthMode AuthMode(string name, UpstreamAuthMode fallback)
        {
            if (!TryGet(name, out var raw))
            {
                return fallback;
            }
            if (!UpstreamAuthModes.TryParse(raw, out var mode))
            {
                errors.Add(new ConfigError(name, $"unknown auth mode '{raw}' (expected 'Authorization' or 'x-api-key')"));
            }
            return mode;
        }

        public LogLevel LogLevel(string name, LogLevel fallback)
        {
            if (!TryGet(name, out var raw))
            {
                return fallback;
            }
            LogLevel? level = raw.ToUpperInvariant() switch
            {
                "TRACE" => Microsoft.Extensions.Logging.LogLevel.Trace,
                "DEBUG" => Microsoft.Extensions.Logging.LogLevel.Debug,
                "INFO" or "INFORMATION" => Microsoft.Extensions.Logging.LogLevel.Information,
                "WARN" or "WARNING" => Microsoft.Extensions.Logging.LogLevel.Warning,
                "ERROR" => Microsoft.Extensions.Logging.LogLevel.Error,
                "CRITICAL" or "FATAL" => Microsoft.Extensions.Logging.LogLevel.Critical,
                "NONE" => Microsoft.Extensions.Logging.LogLevel.None,
                _ => null,
            };
            if (level is null)
            {
                errors.Add(new ConfigError(name, $"unknown log level '{raw}' (DEBUG, INFO, WARNING, ERROR, CRITICAL or a .NET level name)"));
            }
            return level ?? fallback;
        }

        public IReadOnlyList<string> List(string name, IReadOnlyList<string> fallback)
            => TryGet(name, out var raw) ? raw.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : fallback;

        public IReadOnlyList<IPNetwork> Networks(string name)
        {
            var list = new List<IPNetwork>();
            foreach (var item in List(name, []))
            {
                if (IPNetwork.TryParse(item, out var network))
                {
                    list.Add(network);
                }
                else if (IPAddress.TryParse(item, out var address))
                {
                    list.Add(new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
                }
                else
                {
                    errors.Add(new ConfigError(name, $"'{item}' is not an IP address or CIDR range"));
                }
            }
            return list;
        }
    }
}
