using Microsoft.Extensions.Logging;
using ZLogger;

namespace EdgeProxy.Forwarding;

internal sealed partial class HttpForwarder
{
    [ZLoggerMessage(LogLevel.Information, "request {requestId} {method} {route} backend={backendId} status={status} duration_ms={durationMs:0.0} attempts={attempts} outcome={outcome}")]
    private static partial void LogRequest(ILogger logger, string requestId, string method, string route, string backendId, int status, double durationMs, int attempts, string outcome);

    [ZLoggerMessage(LogLevel.Warning, "request {requestId} {route}: backend {backendId} failed before the request was delivered ({reason}: {detail}); failing over")]
    private static partial void LogFailover(ILogger logger, string requestId, string route, string backendId, string reason, string detail);

    [ZLoggerMessage(LogLevel.Warning, "request {requestId} {route}: backend {backendId} dropped the connection before answering ({detail}); sending the {method} request to another backend")]
    private static partial void LogDroppedRetry(ILogger logger, string requestId, string route, string backendId, string method, string detail);

    [ZLoggerMessage(LogLevel.Warning, "request {requestId} {route}: backend {backendId} failed ({reason}, {exceptionType}: {detail})")]
    private static partial void LogUpstreamError(ILogger logger, string requestId, string route, string backendId, string reason, string exceptionType, string detail);

    [ZLoggerMessage(LogLevel.Information, "request {requestId} {route}: the client went away before backend {backendId} answered; upstream request cancelled")]
    private static partial void LogClientGoneBeforeResponse(ILogger logger, string requestId, string route, string backendId);

    [ZLoggerMessage(LogLevel.Information, "request {requestId} {route}: the client's request body failed ({reason}); upstream request to {backendId} cancelled, not counted against it")]
    private static partial void LogClientBodyFailed(ILogger logger, string requestId, string route, string reason, string backendId);

    [ZLoggerMessage(LogLevel.Information, "request {requestId} {route}: SHUTDOWN_TIMEOUT ran out before backend {backendId} answered; upstream request cancelled")]
    private static partial void LogShutdownBeforeResponse(ILogger logger, string requestId, string route, string backendId);

    [ZLoggerMessage(LogLevel.Warning, "request {requestId} {route}: backend {backendId} refused with {status} (Retry-After {retryAfterSeconds} s); trying another backend")]
    private static partial void LogRefusedRetry(ILogger logger, string requestId, string route, string backendId, int status, double retryAfterSeconds);

    [ZLoggerMessage(LogLevel.Warning, "request {requestId} {route}: backend {backendId} gave no first byte in time; {method} is a safe read, trying another backend")]
    private static partial void LogHungRetry(ILogger logger, string requestId, string route, string backendId, string method);

    [ZLoggerMessage(LogLevel.Warning, "request {requestId} {route}: every backend is unhealthy; panic mode, trying {backendId} anyway")]
    private static partial void LogPanic(ILogger logger, string requestId, string route, string backendId);

    [ZLoggerMessage(LogLevel.Warning, "request {requestId} {route}: no healthy backend; answering 503 (ON_ALL_UNHEALTHY=fail)")]
    private static partial void LogNoBackend(ILogger logger, string requestId, string route);

    [ZLoggerMessage(LogLevel.Warning, "backend {route}/{backendId} ejected for {seconds:0.#}s (ejection #{count}: {reason})")]
    private static partial void LogEjected(ILogger logger, string route, string backendId, double seconds, int count, string reason);

    [ZLoggerMessage(LogLevel.Information, "backend {route}/{backendId} re-admitted after a successful half-open trial (slow start)")]
    private static partial void LogReadmitted(ILogger logger, string route, string backendId);

    [ZLoggerMessage(LogLevel.Information, "request {requestId}: response ended early ({reason}; {exceptionType}){clientNote}")]
    private static partial void LogStreamFailedCore(ILogger logger, string requestId, string reason, string exceptionType, string clientNote);

    private static void LogStreamFailed(ILogger logger, string requestId, string reason, string exceptionType)
        => LogStreamFailedCore(logger, requestId, reason, exceptionType, reason switch
        {
            "client_gone" => ": the client went away, upstream request cancelled",
            "shutdown" => ": SHUTDOWN_TIMEOUT ran out while the gateway drained, upstream request cancelled",
            _ => "",
        });
}
