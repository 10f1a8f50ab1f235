using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using EdgeProxy.Forwarding;
using EdgeProxy.Tests.Infrastructure;
using EdgeProxy.Transport;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Tests.Unit.Transport;

/// <summary>
/// The epoll transport's pipe semantics, on real loopback sockets: what Kestrel's HTTP stack and the
/// fast path rely on from a transport (Pipe's read/examine/consume rules, cancellation, the end of
/// the stream, back-pressure, FIN/reset/abort and ConnectionClosed), and TLS on the socket (the
/// handshake, records beyond a full buffer, a write larger than the kernel takes, failures, abort).
/// </summary>
public sealed class EpollTransportTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly EpollLoops _loops = new(1);
    private IConnectionListener _listener = null!;

    public async Task InitializeAsync()
        => _listener = await new EpollTransportFactory(_loops).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));

    public async Task DisposeAsync()
    {
        await _listener.UnbindAsync();
        await _listener.DisposeAsync();
        _loops.Dispose();
    }

    private async Task<(Socket Client, ConnectionContext Server)> ConnectAsync()
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = _listener.AcceptAsync().AsTask();
        await client.ConnectAsync(_listener.EndPoint);
        var server = await accept.WaitAsync(Patience);
        Assert.NotNull(server);
        return (client, server!);
    }

    private static string Text(ReadOnlySequence<byte> buffer) => Encoding.ASCII.GetString(buffer.ToArray());

    [Fact]
    public async Task A_read_returns_what_arrived_and_an_examined_buffer_waits_for_more()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        var input = server.Transport.Input;

        var pending = input.ReadAsync();
        Assert.False(pending.IsCompleted);   // nothing sent yet: the read parks on the loop
        await client.SendAsync("hello"u8.ToArray());
        var first = await pending.AsTask().WaitAsync(Patience);
        Assert.Equal("hello", Text(first.Buffer));
        Assert.False(first.IsCompleted);

        // Examined everything, consumed nothing: the next read waits, then returns old and new bytes together.
        input.AdvanceTo(first.Buffer.Start, first.Buffer.End);
        var second = input.ReadAsync();
        Assert.False(second.IsCompleted);
        await client.SendAsync(" world"u8.ToArray());
        var both = await second.AsTask().WaitAsync(Patience);
        Assert.Equal("hello world", Text(both.Buffer));

        // Consumed a part, examined nothing past it: the rest comes back at once.
        input.AdvanceTo(both.Buffer.GetPosition(6));
        Assert.True(input.TryRead(out var rest));
        Assert.Equal("world", Text(rest.Buffer));
        input.AdvanceTo(rest.Buffer.End);
        Assert.False(input.TryRead(out var none), none.Buffer.Length.ToString());
    }

    [Fact]
    public async Task Bytes_left_unconsumed_accumulate_across_segments_in_order()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        var input = server.Transport.Input;
        var sent = new byte[200_000];
        new Random(7).NextBytes(sent);
        var send = client.SendAsync(sent);

        ReadResult result;
        while (true)
        {
            result = await input.ReadAsync().AsTask().WaitAsync(Patience);
            if (result.Buffer.Length >= sent.Length)
            {
                break;
            }
            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
        Assert.False(result.Buffer.IsSingleSegment);
        Assert.Equal(sent, result.Buffer.ToArray());
        input.AdvanceTo(result.Buffer.End);
        await send;
    }

    [Fact]
    public async Task CancelPendingRead_ends_a_parked_read_and_else_the_next_one()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        var input = server.Transport.Input;

        var parked = input.ReadAsync();
        Assert.False(parked.IsCompleted);
        input.CancelPendingRead();
        var canceled = await parked.AsTask().WaitAsync(Patience);
        Assert.True(canceled.IsCanceled);
        input.AdvanceTo(canceled.Buffer.Start);

        input.CancelPendingRead();
        var next = await input.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.True(next.IsCanceled);
        input.AdvanceTo(next.Buffer.Start);

        // And reading goes on normally afterwards.
        await client.SendAsync("x"u8.ToArray());
        var data = await input.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal("x", Text(data.Buffer));
        input.AdvanceTo(data.Buffer.End);
    }

    [Fact]
    public async Task A_read_token_cancels_a_parked_read()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => server.Transport.Input.ReadAsync(timeout.Token).AsTask().WaitAsync(Patience));

        // The reader is usable afterwards.
        await client.SendAsync("y"u8.ToArray());
        var data = await server.Transport.Input.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal("y", Text(data.Buffer));
        server.Transport.Input.AdvanceTo(data.Buffer.End);
    }

    [Fact]
    public async Task The_peers_FIN_completes_the_input_and_fires_ConnectionClosed_without_a_read()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        var closed = new TaskCompletionSource();
        server.ConnectionClosed.Register(() => closed.TrySetResult());

        await client.SendAsync("last"u8.ToArray());
        client.Shutdown(SocketShutdown.Send);
        await closed.Task.WaitAsync(Patience);   // nobody was reading: the loop saw the FIN

        var result = await server.Transport.Input.ReadAsync().AsTask().WaitAsync(Patience);
        while (!result.IsCompleted)
        {
            server.Transport.Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            result = await server.Transport.Input.ReadAsync().AsTask().WaitAsync(Patience);
        }
        Assert.Equal("last", Text(result.Buffer));
    }

    [Fact]
    public async Task A_reset_fires_ConnectionClosed_and_fails_the_read()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        var closed = new TaskCompletionSource();
        server.ConnectionClosed.Register(() => closed.TrySetResult());
        client.LingerState = new LingerOption(true, 0);
        client.Close();   // RST
        await closed.Task.WaitAsync(Patience);
        var error = await Record.ExceptionAsync(async () =>
        {
            var result = await server.Transport.Input.ReadAsync().AsTask().WaitAsync(Patience);
            Assert.True(result.IsCompleted);
        });
        Assert.True(error is null or ConnectionResetException, error?.ToString());
    }

    [Fact]
    public async Task A_flush_waits_while_the_peer_does_not_read_and_completes_once_it_does()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        client.ReceiveBufferSize = 64 * 1024;
        var output = server.Transport.Output;
        var payload = new byte[8 * 1024 * 1024];
        new Random(3).NextBytes(payload);
        payload.CopyTo(output.GetSpan(payload.Length));
        output.Advance(payload.Length);
        var flush = output.FlushAsync();
        Assert.False(flush.IsCompleted);   // 8 MB do not fit in the socket buffers: back-pressure

        var received = new byte[payload.Length];
        var total = 0;
        while (total < received.Length)
        {
            total += await client.ReceiveAsync(received.AsMemory(total));
        }
        var result = await flush.AsTask().WaitAsync(Patience);
        Assert.False(result.IsCompleted);
        Assert.Equal(payload, received);
    }

    [Fact]
    public async Task Completing_the_output_sends_what_was_written_then_ends_the_connection()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        var output = server.Transport.Output;
        "bye"u8.CopyTo(output.GetSpan(3));
        output.Advance(3);
        output.Complete();   // never flushed: completion still sends it (a Pipe's writer commits on completion too)

        var received = new MemoryStream();
        var buffer = new byte[64];
        int n;
        while ((n = await client.ReceiveAsync(buffer).WaitAsync(Patience)) > 0)
        {
            received.Write(buffer, 0, n);
        }
        Assert.Equal("bye", Encoding.ASCII.GetString(received.ToArray()));
    }

    [Fact]
    public async Task Abort_ends_the_connection_fails_reads_and_reports_writes_completed()
    {
        var (client, server) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        var closed = new TaskCompletionSource();
        server.ConnectionClosed.Register(() => closed.TrySetResult());
        var parked = server.Transport.Input.ReadAsync();
        server.Abort(new ConnectionAbortedException("test abort"));
        await closed.Task.WaitAsync(Patience);
        var error = await Record.ExceptionAsync(() => parked.AsTask().WaitAsync(Patience));
        Assert.IsType<ConnectionAbortedException>(error);

        "late"u8.CopyTo(server.Transport.Output.GetSpan(4));
        server.Transport.Output.Advance(4);
        var flushed = await server.Transport.Output.FlushAsync().AsTask().WaitAsync(Patience);
        Assert.True(flushed.IsCompleted);

        Assert.Equal(0, await client.ReceiveAsync(new byte[16]).WaitAsync(Patience));
    }

    [Fact]
    public async Task Many_connections_are_served_concurrently_on_one_loop()
    {
        const int count = 50;
        var pairs = new List<(Socket Client, ConnectionContext Server)>();
        for (var i = 0; i < count; i++)
        {
            pairs.Add(await ConnectAsync());
        }
        try
        {
            var echoes = pairs.Select(async pair =>
            {
                var result = await pair.Server.Transport.Input.ReadAsync().AsTask().WaitAsync(Patience);
                foreach (var segment in result.Buffer)
                {
                    await pair.Server.Transport.Output.WriteAsync(segment);
                }
                pair.Server.Transport.Input.AdvanceTo(result.Buffer.End);
            }).ToList();
            for (var i = 0; i < count; i++)
            {
                await pairs[i].Client.SendAsync(Encoding.ASCII.GetBytes($"ping {i}"));
            }
            await Task.WhenAll(echoes).WaitAsync(Patience);
            for (var i = 0; i < count; i++)
            {
                var buffer = new byte[32];
                var n = await pairs[i].Client.ReceiveAsync(buffer).WaitAsync(Patience);
                Assert.Equal($"ping {i}", Encoding.ASCII.GetString(buffer, 0, n));
            }
        }
        finally
        {
            foreach (var (client, server) in pairs)
            {
                client.Dispose();
                await server.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Unbind_closes_the_listening_socket_ends_the_parked_accept_and_frees_the_port()
    {
        var (client, server) = await ConnectAsync();   // a connection that outlives the listener, as in a drain
        await using var _ = server;
        using var __ = client;
        var endPoint = (IPEndPoint)_listener.EndPoint;
        var parked = _listener.AcceptAsync().AsTask();
        Assert.False(parked.IsCompleted);

        await _listener.UnbindAsync();   // Kestrel's first step of a shutdown; DisposeAsync comes after the drain

        Assert.Null(await parked.WaitAsync(Patience));
        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<SocketException>(() => late.ConnectAsync(endPoint).WaitAsync(Patience));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        await using var replacement = await new EpollTransportFactory(_loops).BindAsync(endPoint);   // the port is free again
        Assert.Equal(endPoint.Port, ((IPEndPoint)replacement.EndPoint).Port);
        await client.SendAsync("still open"u8.ToArray());   // the accepted connection is untouched
        var read = await server.Transport.Input.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal("still open", Text(read.Buffer));
    }

    [Fact]
    public async Task An_upstream_connect_to_a_closed_port_is_refused()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)probe.LocalEndPoint!).Port;   // bound, never listening: connects are refused
        var error = await Assert.ThrowsAsync<SocketException>(() =>
            EpollUpstreamSocket.ConnectAsync(_loops, new DnsEndPoint("127.0.0.1", port), TimeSpan.FromSeconds(5), CancellationToken.None).AsTask());
        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
    }

    [Fact]
    public async Task An_upstream_socket_sends_receives_and_waits_for_data_without_a_buffer()
    {
        using var backend = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        backend.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        backend.Listen();
        var accepted = backend.AcceptAsync();
        using var upstream = await EpollUpstreamSocket.ConnectAsync(_loops, new DnsEndPoint("localhost", ((IPEndPoint)backend.LocalEndPoint!).Port), TimeSpan.FromSeconds(5), CancellationToken.None);
        using var peer = await accepted.WaitAsync(Patience);

        Assert.True(upstream.LooksAlive());
        Assert.Equal(4, await upstream.SendAsync("ping"u8.ToArray(), CancellationToken.None));
        var got = new byte[4];
        Assert.Equal(4, await peer.ReceiveAsync(got));

        var wait = upstream.ReceiveAsync(Memory<byte>.Empty, CancellationToken.None);
        Assert.False(wait.IsCompleted);   // zero-byte read: parked until data
        await peer.SendAsync("pong"u8.ToArray());
        Assert.Equal(0, await wait.AsTask().WaitAsync(Patience));
        var buffer = new byte[16];
        Assert.Equal(4, await upstream.ReceiveAsync(buffer, CancellationToken.None));
        Assert.Equal("pong", Encoding.ASCII.GetString(buffer, 0, 4));

        peer.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await upstream.ReceiveAsync(buffer, CancellationToken.None).AsTask().WaitAsync(Patience));
        Assert.False(upstream.LooksAlive());
    }

    // ---- TLS on the socket (TlsSession: OpenSSL reading and writing through the connection's pipes) ----

    private static readonly Lazy<(TestCertificates Pki, X509Certificate2 Leaf)> Certificates = new(() =>
    {
        var pki = TestCertificates.Create();
        return (pki, pki.IssueLeaf());
    });

    private static TlsContext ServerContext()
    {
        var (pki, leaf) = Certificates.Value;
        return TlsContext.Create(Encoding.ASCII.GetBytes(pki.ChainPem(leaf)), Encoding.ASCII.GetBytes(TestCertificates.KeyPem(leaf)));
    }

    /// <summary>A real TLS client (SslStream trusting only the test root) and the server's connection after its handshake.</summary>
    private async Task<(SslStream Client, EpollConnection Server, TlsSessionInfo Session)> ConnectTlsAsync(SslProtocols protocols = SslProtocols.None, string alpn = "h2")
    {
        var (socket, server) = await ConnectAsync();
        var epoll = (EpollConnection)server;
        using var context = ServerContext();
        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(Certificates.Value.Pki.Root);
        var client = new SslStream(new NetworkStream(socket, ownsSocket: true));
        var clientHandshake = client.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = protocols,
            CertificateChainPolicy = policy,
            ApplicationProtocols = [new SslApplicationProtocol(alpn)],
        });
        var session = await epoll.StartTlsAsync(context, CancellationToken.None).WaitAsync(Patience);
        await clientHandshake.WaitAsync(Patience);
        return (client, epoll, session);
    }

    private static async Task<byte[]> ReadExactlyAsync(PipeReader input, int length)
    {
        while (true)
        {
            var result = await input.ReadAsync().AsTask().WaitAsync(Patience);
            if (result.Buffer.Length >= length || result.IsCompleted)
            {
                var bytes = result.Buffer.Slice(0, Math.Min(length, result.Buffer.Length)).ToArray();
                input.AdvanceTo(result.Buffer.GetPosition(bytes.Length));
                return bytes;
            }
            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    [Theory]
    [InlineData(SslProtocols.Tls12)]
    [InlineData(SslProtocols.Tls13)]
    public async Task Tls_handshake_reports_protocol_alpn_and_name_and_the_pipes_carry_plaintext(SslProtocols protocol)
    {
        var (client, server, session) = await ConnectTlsAsync(protocol);
        await using var _ = server;
        await using var __ = client;

        Assert.Equal(protocol, session.Protocol);
        Assert.Equal(protocol, client.SslProtocol);
        Assert.Equal("h2"u8.ToArray(), session.ApplicationProtocol);
        Assert.Equal("localhost", session.HostName);
        Assert.Equal(client.NegotiatedCipherSuite, session.CipherSuite);
        Assert.Equal(Certificates.Value.Leaf.Thumbprint, client.RemoteCertificate!.GetCertHashString());

        await client.WriteAsync("ping"u8.ToArray());
        Assert.Equal("ping"u8.ToArray(), await ReadExactlyAsync(server.Transport.Input, 4));
        await server.Transport.Output.WriteAsync("pong"u8.ToArray());
        var buffer = new byte[16];
        Assert.Equal(4, await client.ReadAsync(buffer).AsTask().WaitAsync(Patience));
        Assert.Equal("pong"u8.ToArray(), buffer[..4]);

        // The client's close_notify and FIN end the server's input.
        await client.ShutdownAsync();
        client.Dispose();
        var end = await server.Transport.Input.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.True(end.IsCompleted);
        Assert.Equal(0, end.Buffer.Length);
    }

    [Fact]
    public async Task Tls_request_arriving_with_the_clients_finished_is_read_without_a_new_edge()
    {
        // TCP_CORK on the client holds its Finished until the request follows, so both reach the
        // server in one receive, which the handshake makes: the request then waits in OpenSSL.
        var (socket, server) = await ConnectAsync();
        var epoll = (EpollConnection)server;
        await using var _ = server;
        using var context = ServerContext();
        var client = new SslStream(new NetworkStream(socket, ownsSocket: true), false, (_, _, _, _) => true);
        await using var __ = client;
        var serverHandshake = epoll.StartTlsAsync(context, CancellationToken.None);
        socket.SetRawSocketOption(6, 3, BitConverter.GetBytes(1));   // IPPROTO_TCP, TCP_CORK (the ClientHello waits its 200 ms)
        await client.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", EnabledSslProtocols = SslProtocols.Tls13 }).WaitAsync(Patience);
        await client.WriteAsync("ping"u8.ToArray());
        socket.SetRawSocketOption(6, 3, BitConverter.GetBytes(0));   // uncork: Finished and request go out together
        await serverHandshake.WaitAsync(Patience);
        Assert.Equal("ping"u8.ToArray(), await ReadExactlyAsync(server.Transport.Input, 4));
    }

    [Fact]
    public async Task Tls_records_decrypted_beyond_a_full_read_buffer_are_delivered_without_a_new_edge()
    {
        var (client, server, _) = await ConnectTlsAsync();
        await using var _s = server;
        await using var _c = client;
        // Several records sent at once, more than one receive buffer holds: after the first read filled
        // its buffer, the rest sits decrypted or buffered in OpenSSL with nothing new in the socket.
        var data = new byte[40_000];
        Random.Shared.NextBytes(data);
        await client.WriteAsync(data);
        await client.FlushAsync();
        Assert.Equal(data, await ReadExactlyAsync(server.Transport.Input, data.Length));
    }

    [Fact]
    public async Task Tls_write_larger_than_the_kernel_takes_completes_as_the_peer_reads()
    {
        var (client, server, _) = await ConnectTlsAsync();
        await using var _s = server;
        await using var _c = client;
        var data = new byte[16 << 20];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(i * 31 + 7);
        }

        var write = server.Transport.Output.WriteAsync(data).AsTask();
        await Task.Delay(100);
        Assert.False(write.IsCompleted);   // the peer has read nothing: the rest waits for room

        var received = new byte[data.Length];
        var total = 0;
        while (total < received.Length)
        {
            var n = await client.ReadAsync(received.AsMemory(total)).AsTask().WaitAsync(Patience);
            Assert.True(n > 0, "the stream's bytes ended early");
            total += n;
        }
        await write.WaitAsync(Patience);
        Assert.Equal(data, received);
    }

    [Fact]
    public async Task Tls_handshake_fails_on_cleartext_and_is_cancelled_when_the_client_sends_nothing()
    {
        using var context = ServerContext();
        var (plain, server) = await ConnectAsync();
        await using (server)
        using (plain)
        {
            await plain.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
            await Assert.ThrowsAsync<AuthenticationException>(() => ((EpollConnection)server).StartTlsAsync(context, CancellationToken.None).WaitAsync(Patience));
        }

        var (silent, idle) = await ConnectAsync();
        await using (idle)
        using (silent)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ((EpollConnection)idle).StartTlsAsync(context, timeout.Token).WaitAsync(Patience));
        }
    }

    [Fact]
    public async Task Tls_garbage_after_the_handshake_fails_the_read_and_an_abort_fails_both_directions()
    {
        var (client, server, _) = await ConnectTlsAsync();
        await using (server)
        await using (client)
        {
            var read = server.Transport.Input.ReadAsync().AsTask();
            server.Abort(new ConnectionAbortedException("test abort"));
            await Assert.ThrowsAsync<ConnectionAbortedException>(() => read.WaitAsync(Patience));
            var flush = await server.Transport.Output.WriteAsync(new byte[8]).AsTask().WaitAsync(Patience);
            Assert.True(flush.IsCompleted);   // the connection is gone: the write is dropped
        }

        var (socket, raw) = await ConnectAsync();
        await using (raw)
        {
            using var context = ServerContext();
            var tlsClient = new SslStream(new NetworkStream(socket, ownsSocket: true), false, (_, _, _, _) => true);
            await using var _ = tlsClient;
            var handshake = tlsClient.AuthenticateAsClientAsync("localhost");
            await ((EpollConnection)raw).StartTlsAsync(context, CancellationToken.None).WaitAsync(Patience);
            await handshake.WaitAsync(Patience);
            // A record with a bad MAC: an application-data header, then bytes no key produced.
            var forged = new byte[5 + 64];
            forged[0] = 23;
            forged[1] = 3;
            forged[2] = 3;
            forged[4] = 64;
            await socket.SendAsync(forged);
            await Assert.ThrowsAsync<ConnectionAbortedException>(() => raw.Transport.Input.ReadAsync().AsTask().WaitAsync(Patience));
        }
    }
}
