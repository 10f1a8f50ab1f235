using Microsoft.Extensions.Logging;
using ZLogger;

namespace EdgeProxy.Forwarding;

internal sealed partial class ShutdownDrain
{
    [ZLoggerMessage(LogLevel.Information, "Shutting down: no new connections, /ready answers 503; requests in flight may finish for up to {seconds:0.###} s (SHUTDOWN_TIMEOUT)")]
    private static partial void LogDraining(ILogger logger, double seconds);

    [ZLoggerMessage(LogLevel.Warning, "Shutdown: SHUTDOWN_TIMEOUT ({seconds:0.###} s) reached; ending the requests and streams still open")]
    private static partial void LogDeadline(ILogger logger, double seconds);
}
