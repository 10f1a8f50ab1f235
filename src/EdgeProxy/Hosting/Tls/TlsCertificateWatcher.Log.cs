using Microsoft.Extensions.Logging;
using ZLogger;

namespace EdgeProxy.Hosting.Tls;

internal sealed partial class TlsCertificateWatcher
{
    [ZLoggerMessage(LogLevel.Information, "TLS certificate from {path}: {certificate}")]
    private static partial void LogServing(ILogger logger, string path, string certificate);

    [ZLoggerMessage(LogLevel.Warning, "TLS: libssl.so.3 (OpenSSL 3) could not be loaded; TLS runs through Kestrel's HTTPS middleware, at a higher CPU cost per request")]
    private static partial void LogNoOpenSsl(ILogger logger);

    [ZLoggerMessage(LogLevel.Warning, "TLS certificate {path} expired on {notAfter:yyyy-MM-dd HH:mm} UTC; clients will refuse it until it is renewed")]
    private static partial void LogExpired(ILogger logger, string path, DateTime notAfter);

    [ZLoggerMessage(LogLevel.Information, "TLS certificate reloaded ({trigger}): {certificate}")]
    private static partial void LogReloaded(ILogger logger, string trigger, string certificate);

    [ZLoggerMessage(LogLevel.Information, "TLS certificate unchanged ({trigger})")]
    private static partial void LogUnchanged(ILogger logger, string trigger);

    [ZLoggerMessage(LogLevel.Error, "TLS certificate reload rejected ({trigger}): {path}: {reason}; still serving {current}")]
    private static partial void LogRejected(ILogger logger, string trigger, string path, string reason, string current);

    [ZLoggerMessage(LogLevel.Warning, "TLS certificate directory {directory} cannot be watched ({reason}); reload with SIGHUP")]
    private static partial void LogWatchFailed(ILogger logger, string directory, string reason);
}
