using System.Runtime.InteropServices;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Routing;

/// <summary>
/// Reloads backends.json when the file changes or on SIGHUP. A valid file is validated completely,
/// built into a new route table (unchanged backends keep their health state) and published with one
/// atomic swap: in-flight requests and streams continue on the table they started with. An invalid
/// file is logged with every error and the last good config keeps serving.
/// The process's one SIGHUP registration lives here; <paramref name="alsoOnSighup"/> reloads what
/// else SIGHUP covers (the TLS certificate).
/// </summary>
internal sealed partial class BackendsConfigWatcher(
    string path,
    GatewaySettings settings,
    RouteTableProvider routes,
    TimeProvider time,
    HealthChangeSignal signal,
    ILogger<BackendsConfigWatcher> logger,
    Action? alsoOnSighup = null) : DebouncedFileWatcher(time)
{
    private readonly Lock _gate = new();
    private PosixSignalRegistration? _sighup;
    private byte[] _lastContent = [];

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        _lastContent = ReadFile() ?? [];
        if (SighupDisposition.ResetIfIgnored())
        {
            LogSighupWasIgnored(logger);
        }
        _sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            LogSighup(logger);
            Reload(force: true);
            alsoOnSighup?.Invoke();
        });
        if (settings.WatchConfig)
        {
            var full = Path.GetFullPath(path);
            Watch(Path.GetDirectoryName(full)!, Path.GetFileName(full));
        }
        return Task.CompletedTask;
    }

    protected override void OnChanged() => Reload(force: false);

    /// <summary>Loads, validates and publishes the file. Returns true when a new table was published.</summary>
    public bool Reload(bool force)
    {
        lock (_gate)
        {
            var content = ReadFile();
            if (!force && content is not null && content.AsSpan().SequenceEqual(_lastContent))
            {
                return false;
            }
            BackendsConfig config;
            var warnings = new List<string>();
            try
            {
                config = BackendsConfigLoader.LoadFile(path, warnings);
            }
            catch (ConfigException ex)
            {
                LogRejected(logger, path, ex.Errors.Count);
                foreach (var error in ex.Errors)
                {
                    LogRejectedDetail(logger, error.Path, error.Message);
                }
                return false;
            }
            foreach (var warning in warnings)
            {
                LogWarning(logger, warning);
            }
            var next = RouteTable.Build(config, settings, HealthPolicy.From(settings), Time, routes.Current);
            routes.Publish(next);
            _lastContent = content ?? [];
            LogReloaded(logger, path, config.Services.Count, config.ModelCount, config.BackendCount);
            signal.Notify();
            return true;
        }
    }

    /// <summary>The file's bytes, kept to skip reloads of unchanged content (backends.json is small; no hash needed).</summary>
    private byte[]? ReadFile()
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _sighup?.Dispose();
        _sighup = null;
    }

    [ZLogger.ZLoggerMessage(LogLevel.Information, "Configuration reloaded from {path}: {services} services, {models} models, {backends} backends")]
    private static partial void LogReloaded(ILogger logger, string path, int services, int models, int backends);

    [ZLogger.ZLoggerMessage(LogLevel.Error, "Configuration reload rejected ({path}: {count} errors); the last good configuration keeps serving")]
    private static partial void LogRejected(ILogger logger, string path, int count);

    [ZLogger.ZLoggerMessage(LogLevel.Error, "  {field}: {message}")]
    private static partial void LogRejectedDetail(ILogger logger, string field, string message);

    [ZLogger.ZLoggerMessage(LogLevel.Warning, "Configuration: {warning}")]
    private static partial void LogWarning(ILogger logger, string warning);

    [ZLogger.ZLoggerMessage(LogLevel.Information, "SIGHUP was inherited as ignored (nohup); handling it anyway: kill -HUP reloads the configuration")]
    private static partial void LogSighupWasIgnored(ILogger logger);

    [ZLogger.ZLoggerMessage(LogLevel.Information, "SIGHUP received: reloading configuration")]
    private static partial void LogSighup(ILogger logger);
}
