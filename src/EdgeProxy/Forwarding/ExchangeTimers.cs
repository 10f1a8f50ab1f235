using EdgeProxy.Configuration;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Whose time an exchange is spending, one rule for both request paths. Each exchange has one
/// timer (a <see cref="CancellationTokenSource"/>); what it is set to says who is waited for, and
/// so who is at fault when it fires:
/// <list type="bullet">
/// <item>waiting for the client's next request-body bytes: CLIENT_BODY_TIMEOUT, the client's time
/// (408 <c>client_body_timeout</c>, never counted against the backend);</item>
/// <item>writing the request upstream, and from the moment it is completely sent until the first
/// response byte: FIRST_BYTE_TIMEOUT, the backend's time (504, passive health);</item>
/// <item>between two response chunks: STREAM_IDLE_TIMEOUT.</item>
/// </list>
/// A slow client therefore never ejects a healthy backend: the first-byte timer starts over when
/// the body is sent.
/// </summary>
internal static class ExchangeTimers
{
    public static void AwaitClient(CancellationTokenSource timer, GatewaySettings settings) => timer.CancelAfter(settings.ClientBodyTimeout);

    public static void AwaitUpstream(CancellationTokenSource timer, GatewaySettings settings) => timer.CancelAfter(settings.FirstByteTimeout);

    public static void AwaitNextChunk(CancellationTokenSource timer, GatewaySettings settings) => timer.CancelAfter(settings.StreamIdleTimeout);
}
