using System.Net;
using System.Net.Sockets;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>HTTP clients for tests: no proxy, no redirects, no decompression, optional source address.</summary>
internal static class TestHttp
{
    /// <summary>
    /// A client whose connections come from <paramref name="sourceAddress"/> (any 127.x address works on
    /// Linux loopback), which is how tests play many distinct client IPs.
    /// </summary>
    /// <param name="maxConnectionsPerServer">Connection cap (SocketsHttpHandler default: unlimited).</param>
    /// <param name="drainOnDispose">
    /// False: disposing a response that was not read to the end closes its connection at once
    /// (SocketsHttpHandler otherwise drains it for up to 2 s to reuse it), i.e. "the client went away".
    /// </param>
    public static HttpClient Create(string? sourceAddress = null, TimeSpan? timeout = null, int maxConnectionsPerServer = int.MaxValue, bool drainOnDispose = true)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            MaxConnectionsPerServer = maxConnectionsPerServer,
        };
        if (!drainOnDispose)
        {
            handler.MaxResponseDrainSize = 0;
        }
        if (sourceAddress is not null)
        {
            var local = IPAddress.Parse(sourceAddress);
            handler.ConnectCallback = async (context, token) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(local, 0));
                    var addresses = await Dns.GetHostAddressesAsync(context.DnsEndPoint.Host, AddressFamily.InterNetwork, token);
                    await socket.ConnectAsync(new IPEndPoint(addresses[0], context.DnsEndPoint.Port), token);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }
        return new HttpClient(handler) { Timeout = timeout ?? TimeSpan.FromSeconds(30) };
    }
}
