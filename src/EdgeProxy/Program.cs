using EdgeProxy.Hosting;

// Socket completions run inline on the epoll thread instead of being queued to the thread pool
// (both for Kestrel's transport and for the upstream sockets of SocketsHttpHandler). It saves a
// thread-pool hop per completion (figures: bench/README.md). The runtime
// reads the variable at the first socket use, so it must be set before anything opens a socket.
// Safe for this process because nothing it runs on a socket continuation blocks: the forwarder is
// async end to end, logging goes through ZLogger's background writer, and file/config work runs on
// timers. An operator's explicit value (e.g. 0 to opt out) always wins.
if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
{
    Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
}

return await GatewayApp.RunAsync(args);
