using EdgeProxy.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Hosting.Tls;

/// <summary>
/// Reloads the TLS certificate when its files change and on SIGHUP (the config watcher owns the one
/// signal registration and calls <see cref="Reload"/>). ACME clients replace the files in place
/// (lego), by renaming a new file over the old one, or by re-pointing a symlink (certbot's
/// `live/` links, Kubernetes secret volumes): the directories holding the two files are watched
/// whole, and every event, debounced, re-reads both files and compares them with what is served.
/// A pair that does not make a valid certificate is logged and the current one keeps serving;
/// when that came from a file event, one retry follows shortly, because the certificate and the
/// key are rarely replaced in one step.
/// </summary>
internal sealed partial class TlsCertificateWatcher(
    TlsCertificateStore store,
    GatewaySettings settings,
    TimeProvider time,
    ILogger<TlsCertificateWatcher> logger) : IHostedLifecycleService, IDisposable
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a half-replaced pair (new certificate, old key) gets before it counts as bad.</summary>
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);

    private readonly Lock _gate = new();
    private readonly List<FileSystemWatcher> _watchers = [];
    private ITimer? _debounce;
    private bool _disposed;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Watching starts once the server listens, like the config watcher's.</summary>
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        var certificate = store.Current;
        LogServing(logger, store.CertPath, certificate.Describe());
        if (certificate.Leaf.NotAfter.ToUniversalTime() < time.GetUtcNow().UtcDateTime)
        {
            LogExpired(logger, store.CertPath, certificate.Leaf.NotAfter.ToUniversalTime());
        }
        if (!settings.WatchConfig)
        {
            return Task.CompletedTask;
        }
        foreach (var directory in new[] { store.CertPath, store.KeyPath }.Select(p => Path.GetDirectoryName(Path.GetFullPath(p))!).Distinct(StringComparer.Ordinal))
        {
            try
            {
                var watcher = new FileSystemWatcher(directory)
                {
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
                };
                watcher.Changed += (_, _) => Schedule(Debounce, retry: true);
                watcher.Created += (_, _) => Schedule(Debounce, retry: true);
                watcher.Renamed += (_, _) => Schedule(Debounce, retry: true);
                watcher.Deleted += (_, _) => Schedule(Debounce, retry: true);
                watcher.EnableRaisingEvents = true;
                _watchers.Add(watcher);
            }
            catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                LogWatchFailed(logger, directory, ex.Message);
            }
        }
        return Task.CompletedTask;
    }

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Schedule(TimeSpan delay, bool retry)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            // Several events arrive per replacement; reload once they settle.
            _debounce?.Dispose();
            _debounce = time.CreateTimer(_ => Reload("file change", retry), null, delay, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>SIGHUP: reload now and log the outcome either way.</summary>
    public void Reload(string trigger) => Reload(trigger, retry: false);

    private void Reload(string trigger, bool retry)
    {
        lock (_gate)
        {
            try
            {
                var result = store.Reload(time);
                if (result == TlsReloadResult.Replaced)
                {
                    LogReloaded(logger, trigger, store.Current.Describe());
                }
                else if (!retry)
                {
                    LogUnchanged(logger, trigger);
                }
            }
            catch (Exception ex) when (ex is ServerCertificateException or System.Security.Cryptography.CryptographicException or ArgumentException or IOException)
            {
                // A timer callback must not throw (it would end the process); whatever the files hold, the current certificate stays.
                var (path, reason) = ex is ServerCertificateException bad ? (bad.FilePath, bad.Reason) : (store.CertPath, $"{ex.GetType().Name}: {ex.Message}");
                if (retry)
                {
                    _debounce?.Dispose();
                    _debounce = _disposed ? null : time.CreateTimer(_ => Reload(trigger, retry: false), null, RetryAfter, Timeout.InfiniteTimeSpan);
                    return;
                }
                LogRejected(logger, trigger, path, reason, store.Current.Describe());
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            foreach (var watcher in _watchers)
            {
                watcher.Dispose();
            }
            _watchers.Clear();
            _debounce?.Dispose();
            _debounce = null;
        }
    }
}
