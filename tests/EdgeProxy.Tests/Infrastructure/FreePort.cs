using System.Net;
using System.Net.Sockets;

namespace EdgeProxy.Tests.Infrastructure;

internal static class FreePort
{
    /// <summary>A loopback port that was free a moment ago (the OS hands out ephemeral ports round-robin).</summary>
    public static int Get()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
