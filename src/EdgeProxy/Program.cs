using EdgeProxy.Hosting;

return await GatewayApp.RunAsync(args);
