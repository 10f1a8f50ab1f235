using Microsoft.Extensions.Logging;
using ZLogger;

namespace EdgeProxy.Hosting;

internal sealed partial class RequestDispatcher
{
    [ZLoggerMessage(LogLevel.Error, "request {requestId}: unhandled {exceptionType}: {message}")]
    private static partial void LogUnhandled(ILogger logger, string requestId, string exceptionType, string message);
}
