using System.Net;

namespace EdgeProxy.Transport;

/// <summary>
/// The TCP connect to a backend did not complete within CONNECT_TIMEOUT. Kept with the sockets so
/// both the forwarders and the health checks can tell it apart from other connect failures.
/// </summary>
internal sealed class UpstreamConnectTimeoutException(DnsEndPoint endPoint, TimeSpan timeout)
    : IOException($"Connecting to {endPoint.Host}:{endPoint.Port} timed out after {timeout.TotalMilliseconds:0} ms.");
