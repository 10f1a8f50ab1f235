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
    public static HttpClient Create(string? sourceAddress = null, TimeSpan? timeout = null)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        };
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
