using EdgeProxy.Configuration;
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
    ILogger<TlsCertificateWatcher> logger) : DebouncedFileWatcher(time)
{
    /// <summary>How long a half-replaced pair (new certificate, old key) gets before it counts as bad.</summary>
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);

    private readonly Lock _gate = new();

    public override Task StartedAsync(CancellationToken cancellationToken)
    {
        var certificate = store.Current;
        LogServing(logger, store.CertPath, certificate.Describe());
        if (!store.OnSocket)
        {
            LogNoOpenSsl(logger);
        }
        if (certificate.Leaf.NotAfter.ToUniversalTime() < Time.GetUtcNow().UtcDateTime)
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
                Watch(directory);
            }
            catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                LogWatchFailed(logger, directory, ex.Message);
            }
        }
        return Task.CompletedTask;
    }

    protected override void OnChanged() => Reload("file change", retry: true);

    /// <summary>SIGHUP: reload now and log the outcome either way.</summary>
    public void Reload(string trigger) => Reload(trigger, retry: false);

    private void Reload(string trigger, bool retry)
    {
        lock (_gate)
        {
            try
            {
                if (store.Reload(Time))
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
                    Schedule(RetryAfter, () => Reload(trigger, retry: false));
                    return;
                }
                LogRejected(logger, trigger, path, reason, store.Current.Describe());
            }
        }
    }
}
