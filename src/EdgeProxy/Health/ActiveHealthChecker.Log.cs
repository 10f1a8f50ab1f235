using Microsoft.Extensions.Logging;
using ZLogger;

namespace EdgeProxy.Health;

internal sealed partial class ActiveHealthChecker
{
    [ZLoggerMessage(LogLevel.Information, "Health checks started (interval: {intervalSeconds}s, timeout: {timeoutSeconds}s)")]
    private static partial void LogStarted(ILogger logger, double intervalSeconds, double timeoutSeconds);

    [ZLoggerMessage(LogLevel.Warning, "backend {service}/{model}/{backendId} is unhealthy after {failures} failed checks")]
    private static partial void LogUnhealthy(ILogger logger, string service, string model, string backendId, int failures);

    [ZLoggerMessage(LogLevel.Information, "backend {service}/{model}/{backendId}: {from} -> {to}")]
    private static partial void LogStatusChange(ILogger logger, string service, string model, string backendId, string from, string to);

    [ZLoggerMessage(LogLevel.Debug, "health check {service}/{model}/{backendId} failed: {detail} after {elapsedMs:0.0} ms")]
    private static partial void LogCheckFailed(ILogger logger, string service, string model, string backendId, string detail, double elapsedMs);

    [ZLoggerMessage(LogLevel.Information, "backend {service}/{model}/{backendId}: its engine batches {limit} requests at once (running {running}, waiting {waiting}); the gateway sends it at most that many and queues the rest")]
    private static partial void LogEngineBatch(ILogger logger, string service, string model, string backendId, int limit, int running, int waiting);

    [ZLoggerMessage(LogLevel.Debug, "backend {service}/{model}/{backendId}: batch limit now {limit} (engine running {running}, waiting {waiting})")]
    private static partial void LogEngineBatchChanged(ILogger logger, string service, string model, string backendId, int limit, int running, int waiting);
}
