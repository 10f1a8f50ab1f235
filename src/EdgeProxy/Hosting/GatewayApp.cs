using System.Diagnostics;
using System.Globalization;
using System.Net;
using EdgeProxy.Auth;
using EdgeProxy.Configuration;
using EdgeProxy.Dashboard;
using EdgeProxy.Forwarding;
using EdgeProxy.Health;
using EdgeProxy.Hosting.Demo;
using EdgeProxy.Hosting.Tls;
using EdgeProxy.Observability;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ZLogger;

namespace EdgeProxy.Hosting;

/// <summary>
/// Start-up: (1) command line, (2) settings from environment and `.env`, (3) backends.json, each
/// refusing to start with every error listed and exit code 2; (4) demo backends if asked; (5) the
/// Kestrel host with the one terminal middleware.
/// </summary>
internal static partial class GatewayApp
{
    public const int ExitConfigError = 2;

    public static async Task<int> RunAsync(string[] args)
    {
        var startedAt = Stopwatch.GetTimestamp();
        if (args.Length > 0 && args[0] == Healthcheck.Argument)
        {
            return await Healthcheck.RunAsync(args.AsSpan(1).ToArray()).ConfigureAwait(false);
        }

        // 1. Command line.
        if (ParseArguments(args, out var demo, out var checkOnly) is { } exitCode)
        {
            return exitCode;
        }

        // 2–3. Configuration; bad config never starts a half-working gateway.
        if (LoadConfiguration(demo) is not { } startup)
        {
            return ExitConfigError;
        }
        if (checkOnly)
        {
            PrintConfigCheck(startup);
            return 0;
        }

        // 4. Demo mode: mock LLM backends on the config's loopback URLs.
        var mocks = demo ? await StartDemoBackendsAsync(startup.Config).ConfigureAwait(false) : null;
        if (demo && mocks is null)
        {
            return ExitConfigError;
        }

        // 5. The gateway; the mocks stop after it.
        await using (mocks)
        {
            return await RunGatewayAsync(startup, demo, startedAt).ConfigureAwait(false);
        }
    }

    /// <summary>What start-up loaded before the host is built.</summary>
    private sealed record StartupConfiguration(GatewaySettings Settings, BackendsConfig Config, string ConfigPath, TlsCertificateStore? Tls, List<string> Warnings);

    /// <summary>Reads the flags; returns the exit code when the process should stop here (version, help, unknown argument).</summary>
    private static int? ParseArguments(string[] args, out bool demo, out bool checkOnly)
    {
        demo = false;
        checkOnly = false;
        foreach (var arg in args)
        {
            switch (arg)
            {
                case "--demo":
                    demo = true;
                    break;
                case "--check-config":
                    checkOnly = true;
                    break;
                case "--version":
                    Console.WriteLine("edgeproxy " + GatewayVersion.Value);
                    return 0;
                case "-h":
                case "--help":
                    Console.WriteLine(Usage);
                    return 0;
                default:
                    Console.Error.WriteLine($"edgeproxy: unknown argument '{arg}'\n\n{Usage}");
                    return ExitConfigError;
            }
        }
        return null;
    }

    /// <summary>Settings, backends.json and the TLS certificate; null after printing the error when any is bad.</summary>
    private static StartupConfiguration? LoadConfiguration(bool demo)
    {
        var warnings = new List<string>();
        try
        {
            var environment = SettingsLoader.ProcessEnvironment();
            if (demo)
            {
                // Demo: a known key (when BACKEND_API_KEY is unset) so the printed curl commands work and auth is on, as in production.
                environment.TryAdd("BACKEND_API_KEY", DemoKey);
            }
            var settings = SettingsLoader.Load(environment, Directory.GetCurrentDirectory());
            ApplyIoThreads(settings);
            var configPath = ResolveConfigPath(settings);
            var config = BackendsConfigLoader.LoadFile(configPath, warnings);
            var tls = settings.TlsEnabled ? TlsCertificateStore.Load(settings.TlsCertFile, settings.TlsKeyFile, TimeProvider.System, settings.EpollTransport) : null;
            return new StartupConfiguration(settings, config, configPath, tls, warnings);
        }
        catch (ConfigException ex)
        {
            Console.Error.WriteLine("edgeproxy: configuration error in " + ex.Message);
            return null;
        }
        catch (ServerCertificateException ex)
        {
            Console.Error.WriteLine("edgeproxy: TLS certificate error: " + ex.Message);
            return null;
        }
    }

    /// <summary>--check-config's report: the counts, then each warning.</summary>
    private static void PrintConfigCheck(StartupConfiguration startup)
    {
        var config = startup.Config;
        Console.WriteLine($"{startup.ConfigPath}: OK ({config.Services.Count} services, {config.ModelCount} models, {config.BackendCount} backends)");
        foreach (var warning in startup.Warnings)
        {
            Console.WriteLine("warning: " + warning);
        }
    }

    /// <summary>Starts the demo's mock backends; null after printing the error when they cannot start.</summary>
    private static async Task<MockLlmBackends?> StartDemoBackendsAsync(BackendsConfig config)
    {
        try
        {
            return await MockLlmBackends.StartAsync(config).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException)
        {
            Console.Error.WriteLine("edgeproxy: demo backends could not start: " + ex.Message);
            return null;
        }
    }

    /// <summary>Builds and starts the gateway, logs where it listens, and serves until shutdown.</summary>
    private static async Task<int> RunGatewayAsync(StartupConfiguration startup, bool demo, long startedAt)
    {
        var settings = startup.Settings;
        await using var app = Build(settings, startup.Config, startup.ConfigPath, TimeProvider.System, startup.Warnings, tls: startup.Tls);
        try
        {
            await app.StartAsync().ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            Console.Error.WriteLine($"edgeproxy: cannot listen on {settings.Host}:{settings.Port}: {ex.Message}");
            return 1;
        }
        LogStartup(app, startup, demo, startedAt);
        await app.WaitForShutdownAsync().ConfigureAwait(false);
        return 0;
    }

    /// <summary>The listening addresses, the start-up time and, in demo mode, a curl command to try.</summary>
    private static void LogStartup(WebApplication app, StartupConfiguration startup, bool demo, long startedAt)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("EdgeProxy");
        foreach (var address in ListeningAddresses(app))
        {
            LogListening(logger, address);
        }
        LogStarted(logger, GatewayVersion.Value, Stopwatch.GetElapsedTime(startedAt).TotalMilliseconds);
        if (demo)
        {
            var port = new Uri(ListeningAddresses(app).First()).Port;
            var key = startup.Settings.BackendApiKey == DemoKey ? DemoKey : "$BACKEND_API_KEY";
            var service = startup.Config.Services[0].Name;
            var model = startup.Config.Services[0].Models[0].Name;
            LogDemo(logger, port, $"curl -N http://127.0.0.1:{port}/{service}/{model}/v1/chat/completions -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"model\":\"{model}\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'");
        }
    }

    public const string DemoKey = "demo-key";

    /// <summary>Inline Kestrel scheduling follows the socket setting (Program.cs), so `=0` turns both off.</summary>
    private static bool InlineScheduling => Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") == "1";

    private const string Usage = """
        usage: edgeproxy [--demo] [--check-config] [--version] [--help]
               edgeproxy --healthcheck [URL]

          --demo          also start mock LLM backends on the loopback URLs of backends.json
          --check-config  validate .env/environment and backends.json, then exit (0 = valid)
          --healthcheck   GET URL (default: this configuration's own /health), exit 0 on 2xx, else 1

        Configuration comes from the environment, then ./.env, then defaults: PORT (8000),
        BACKENDS_CONFIG_PATH (./config/backends.json, else ./backends.json), BACKEND_API_KEY,
        BACKEND_AUTH_MODE, HEALTH_CHECK_INTERVAL, HEALTH_CHECK_TIMEOUT, REQUEST_TIMEOUT, ...
        See README.md for the full list.
        """;

    /// <summary>
    /// IO_THREADS becomes the runtime's socket-engine thread count. The runtime reads it once, when the
    /// process opens its first socket, so this runs right after the settings load and before the demo
    /// backends or the gateway listen. 0 leaves the runtime default (or an operator's own
    /// DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT) alone.
    /// </summary>
    internal static void ApplyIoThreads(GatewaySettings settings)
    {
        if (settings.IoThreads > 0)
        {
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT", settings.IoThreads.ToString(CultureInfo.InvariantCulture));
        }
    }

    /// <summary>Contract: BACKENDS_CONFIG_PATH, default ./config/backends.json, else ./backends.json.</summary>
    internal static string ResolveConfigPath(GatewaySettings settings)
    {
        var path = settings.BackendsConfigPath;
        if (!settings.BackendsConfigPathExplicit && !File.Exists(path) && File.Exists("./backends.json"))
        {
            return "./backends.json";
        }
        return path;
    }

    /// <summary>Builds (does not start) the gateway host. Tests call this with a fake clock or a log sink.</summary>
    public static WebApplication Build(
        GatewaySettings settings,
        BackendsConfig config,
        string configPath,
        TimeProvider time,
        IReadOnlyList<string> warnings,
        Action<ILoggingBuilder>? configureLogging = null,
        TlsCertificateStore? tls = null)
    {
        tls ??= settings.TlsEnabled ? TlsCertificateStore.Load(settings.TlsCertFile, settings.TlsKeyFile, time, settings.EpollTransport) : null;
        var builder = CreateBuilder(settings, configureLogging);
        var loops = ConfigureTransport(builder, settings, out var epollUnavailable);
        // The fast path exists once the services do; Kestrel builds the connection pipeline at start.
        Http1FastPath? fastPath = null;
        ConfigureKestrel(builder.WebHost, settings, tls, () => fastPath);
        var core = CreateCore(settings, config, time);
        AddServices(builder.Services, core, settings, configPath, time, tls);

        var app = builder.Build();
        LogConfiguration(app, configPath, config, warnings, core.Authenticator, epollUnavailable);
        var forwarder = app.Services.GetRequiredService<HttpForwarder>();
        forwarder.Loops = loops;
        // SIGTERM/SIGINT: the host raises ApplicationStopping at once, then stops Kestrel (which closes
        // the listening sockets and lets open connections finish) before the other services.
        var drain = app.Services.GetRequiredService<ShutdownDrain>();
        app.Lifetime.ApplicationStopping.Register(drain.Begin);
        app.Run(CreateDispatcher(app, core, settings, forwarder, drain, time).InvokeAsync);
        if (settings.Http1FastPath)
        {
            fastPath = new Http1FastPath(settings, core.Routes, core.Authenticator, forwarder, app.Services.GetRequiredService<ILogger<Http1FastPath>>());
        }
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            forwarder.DisposeUpstreamPools();
            core.ForwardingClient.Dispose();
            core.HealthClient.Dispose();
            core.Metrics.Dispose();
            loops?.Dispose();
        });
        return app;
    }

    /// <summary>The objects built from config before the host: shared by the services, the dispatcher and the fast path.</summary>
    private sealed record GatewayCore(
        RouteTableProvider Routes,
        GatewayMetrics Metrics,
        HealthChangeSignal Signal,
        GatewayKeyAuthenticator Authenticator,
        HttpMessageInvoker ForwardingClient,
        HttpMessageInvoker HealthClient);

    private static WebApplicationBuilder CreateBuilder(GatewaySettings settings, Action<ILoggingBuilder>? configureLogging)
    {
        // Settings come from the environment and .env (contract), not appsettings.json; the host still
        // reads an appsettings.json next to the binary, but without watching it: a reload-on-change
        // JSON source costs a FileSystemWatcher thread and inotify set-up on every start.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
            ContentRootPath = AppContext.BaseDirectory,
        });
        ConfigureLogging(builder.Logging, settings);
        configureLogging?.Invoke(builder.Logging);
        // Kestrel drains until the host's shutdown timeout, then aborts what is left; the forwarders end
        // their exchanges at SHUTDOWN_TIMEOUT, a little before that (ShutdownDrain).
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownDrain.HostTimeout(settings.ShutdownTimeout));
        return builder;
    }

    /// <summary>
    /// TRANSPORT=epoll: registers the epoll transport and returns its loops, or null with the reason in
    /// <paramref name="epollUnavailable"/> when this system cannot run it. Otherwise Kestrel's sockets.
    /// </summary>
    private static EdgeProxy.Transport.EpollLoops? ConfigureTransport(WebApplicationBuilder builder, GatewaySettings settings, out string? epollUnavailable)
    {
        EdgeProxy.Transport.EpollLoops? loops = null;
        epollUnavailable = null;
        if (settings.EpollTransport)
        {
            try
            {
                loops = new EdgeProxy.Transport.EpollLoops(settings.IoThreads > 0 ? settings.IoThreads : Environment.ProcessorCount);
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or System.Net.Sockets.SocketException)
            {
                // A sandbox that forbids epoll (seccomp) or a libc without it: serve on the socket transport rather than not at all.
                epollUnavailable = $"{ex.GetType().Name}: {ex.Message}";
            }
        }
        if (loops is not null)
        {
            // Registered after the socket transport, so Kestrel asks this one first for IP endpoints.
            builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IConnectionListenerFactory>(new EdgeProxy.Transport.EpollTransportFactory(loops));
        }
        else if (InlineScheduling)
        {
            // Run request code and response writes on the socket's own I/O thread instead of
            // hopping to the thread pool for every read and write (Kestrel's counterpart of the
            // inline socket completions set in Program.cs; same safety argument: nothing blocks).
            builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
        }
        return loops;
    }

    /// <summary>
    /// Limits, header encodings and the listeners. <paramref name="fastPath"/> is read when Kestrel
    /// builds each listener's pipeline at start, after <see cref="Build"/> has created the fast path.
    /// </summary>
    private static void ConfigureKestrel(IWebHostBuilder webHost, GatewaySettings settings, TlsCertificateStore? tls, Func<Http1FastPath?> fastPath)
    {
        webHost.ConfigureKestrel(options =>
        {
            options.AddServerHeader = false;
            options.Limits.MaxRequestBodySize = settings.MaxRequestBodySize;
            options.Limits.MinRequestBodyDataRate = null;
            options.Limits.MinResponseDataRate = null;
            // Kestrel collapses a Connection field to keep-alive/close/upgrade before the dispatcher
            // runs; the capture keeps the field names listed with them (RFC 9110 §7.6.1).
            options.RequestHeaderEncodingSelector = ConnectionFieldCapture.Select;
            // Response field values relayed byte for byte: SocketsHttpHandler decodes them as Latin-1,
            // and obs-text (RFC 9110 §5.5) goes back out as the same bytes, as on the fast path.
            options.ResponseHeaderEncodingSelector = static _ => System.Text.Encoding.Latin1;
            var address = settings.Host is "0.0.0.0" or "*" ? IPAddress.Any : settings.Host == "::" ? IPAddress.IPv6Any : IPAddress.Parse(settings.Host);
            // TLS runs first on its listener; the fast path then reads the decrypted bytes (and never an h2 connection).
            options.Listen(address, settings.Port, listen =>
            {
                if (tls is not null && settings.TlsPort == 0)
                {
                    tls.Configure(listen);
                }
                UseFastPath(listen);
            });
            if (tls is not null && settings.TlsPort > 0)
            {
                options.Listen(address, settings.TlsPort, listen =>
                {
                    tls.Configure(listen);
                    UseFastPath(listen);
                });
            }
            if (settings.Http2Port > 0)
            {
                options.Listen(address, settings.Http2Port, listen => listen.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
            }
            if (settings.MetricsPort > 0)
            {
                options.Listen(address, settings.MetricsPort);
            }
        });

        void UseFastPath(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions listen)
        {
            if (settings.Http1FastPath)
            {
                listen.Use(next => fastPath() is { } built ? built.Wrap(next) : next);
            }
        }
    }

    /// <summary>The route table, metrics, health signal, client authentication and the two upstream clients.</summary>
    private static GatewayCore CreateCore(GatewaySettings settings, BackendsConfig config, TimeProvider time)
    {
        var policy = HealthPolicy.From(settings);
        var routes = new RouteTableProvider(RouteTable.Build(config, settings, policy, time));
        var metrics = new GatewayMetrics();
        var signal = new HealthChangeSignal();
        var authenticator = new GatewayKeyAuthenticator(settings.BackendApiKey);
        var upstreamTls = new UpstreamTls(routes);
        var forwardingClient = UpstreamClientFactory.CreateForwardingClient(settings, upstreamTls.Validate);
        var healthClient = UpstreamClientFactory.CreateHealthClient(settings, upstreamTls.Validate);
        return new GatewayCore(routes, metrics, signal, authenticator, forwardingClient, healthClient);
    }

    /// <summary>Registers the singletons and the background services (health checks, config and certificate watchers).</summary>
    private static void AddServices(IServiceCollection services, GatewayCore core, GatewaySettings settings, string configPath, TimeProvider time, TlsCertificateStore? tls)
    {
        var (routes, metrics, signal, authenticator, forwardingClient, healthClient) = core;
        services.AddSingleton(settings);
        services.AddSingleton(time);
        services.AddSingleton(routes);
        services.AddSingleton(metrics);
        services.AddSingleton(signal);
        services.AddSingleton(authenticator);
        services.AddSingleton(sp => new ShutdownDrain(settings.ShutdownTimeout, time, sp.GetRequiredService<ILoggerFactory>().CreateLogger("EdgeProxy")));
        services.AddSingleton(sp => new HttpForwarder(forwardingClient, settings, time, metrics, signal, sp.GetRequiredService<ShutdownDrain>(), sp.GetRequiredService<ILogger<HttpForwarder>>()));
        services.AddSingleton(sp =>
        {
            var checker = new ActiveHealthChecker(() => routes.Current.States, healthClient, settings, time, signal, sp.GetRequiredService<ILogger<ActiveHealthChecker>>());
            routes.Changed += (_, _) => checker.Reconcile();
            return checker;
        });
        if (tls is not null)
        {
            services.AddSingleton(sp => new TlsCertificateWatcher(tls, settings, time, sp.GetRequiredService<ILogger<TlsCertificateWatcher>>()));
            services.AddHostedService(sp => sp.GetRequiredService<TlsCertificateWatcher>());
        }
        services.AddSingleton(sp => new BackendsConfigWatcher(configPath, settings, routes, time, signal, sp.GetRequiredService<ILogger<BackendsConfigWatcher>>(),
            sp.GetService<TlsCertificateWatcher>() is { } certificates ? () => certificates.Reload("SIGHUP") : null));
        services.AddSingleton(sp => new PrometheusExporter(metrics));
        services.AddHostedService(sp => sp.GetRequiredService<ActiveHealthChecker>());
        services.AddHostedService(sp => sp.GetRequiredService<BackendsConfigWatcher>());
    }

    /// <summary>What was loaded, each config warning, and the notices for auth off and epoll unavailable.</summary>
    private static void LogConfiguration(WebApplication app, string configPath, BackendsConfig config, IReadOnlyList<string> warnings, GatewayKeyAuthenticator authenticator, string? epollUnavailable)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("EdgeProxy");
        LogConfigLoaded(logger, configPath, config.Services.Count, config.ModelCount, config.BackendCount);
        foreach (var warning in warnings)
        {
            LogConfigWarning(logger, warning);
        }
        if (!authenticator.Enabled)
        {
            LogAuthOff(logger);
        }
        if (epollUnavailable is not null)
        {
            LogEpollUnavailable(logger, epollUnavailable);
        }
    }

    private static RequestDispatcher CreateDispatcher(WebApplication app, GatewayCore core, GatewaySettings settings, HttpForwarder forwarder, ShutdownDrain drain, TimeProvider time)
        => new(
            settings,
            core.Routes,
            core.Authenticator,
            forwarder,
            new DashboardPage(),
            new HealthEventsEndpoint(core.Routes, core.Signal, time, drain),
            new MetricsEndpoint(app.Services.GetRequiredService<PrometheusExporter>(), core.Routes, settings, core.Authenticator),
            drain,
            time,
            app.Services.GetRequiredService<ILogger<RequestDispatcher>>());

    public static IEnumerable<string> ListeningAddresses(WebApplication app)
        => app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];

    private static void ConfigureLogging(ILoggingBuilder logging, GatewaySettings settings)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(settings.LogLevel);
        // The framework's own chatter only from Warning up, unless LOG_LEVEL is stricter still.
        logging.AddFilter("Microsoft", settings.LogLevel > LogLevel.Warning ? settings.LogLevel : LogLevel.Warning);
        // ASP.NET Core hosting starts an Activity (trace id, tags, scope) for every request whenever
        // this category is enabled at any level; its own messages are Debug/Information request
        // start/finish lines we never show. Off: perf showed Activity creation on every request.
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        logging.AddZLoggerConsole(options =>
        {
            options.UsePlainTextFormatter(formatter =>
            {
                formatter.SetPrefixFormatter($"{0:utc-longdate} {1:short} ", (in MessageTemplate template, in LogInfo info) => template.Format(info.Timestamp, info.LogLevel));
                formatter.SetExceptionFormatter((writer, ex) => Utf8StringInterpolation.Utf8String.Format(writer, $" {ex.GetType().Name}: {ex.Message}"));
            });
        });
    }

    [ZLoggerMessage(LogLevel.Information, "Configuration loaded from {path}: {services} services, {models} models, {backends} backends")]
    private static partial void LogConfigLoaded(ILogger logger, string path, int services, int models, int backends);

    [ZLoggerMessage(LogLevel.Warning, "Configuration: {warning}")]
    private static partial void LogConfigWarning(ILogger logger, string warning);

    [ZLoggerMessage(LogLevel.Warning, "TRANSPORT=epoll is not available here ({reason}); serving on Kestrel's socket transport (TRANSPORT=sockets)")]
    private static partial void LogEpollUnavailable(ILogger logger, string reason);

    [ZLoggerMessage(LogLevel.Warning, "BACKEND_API_KEY is empty: client authentication is OFF. Use this only for local development.")]
    private static partial void LogAuthOff(ILogger logger);

    [ZLoggerMessage(LogLevel.Information, "Listening on {address}")]
    private static partial void LogListening(ILogger logger, string address);

    [ZLoggerMessage(LogLevel.Information, "EdgeProxy {version} started in {elapsedMs:0.0} ms")]
    private static partial void LogStarted(ILogger logger, string version, double elapsedMs);

    [ZLoggerMessage(LogLevel.Information, "Demo mode: dashboard at http://127.0.0.1:{port}/ ; stream a completion with: {curl}")]
    private static partial void LogDemo(ILogger logger, int port, string curl);
}
