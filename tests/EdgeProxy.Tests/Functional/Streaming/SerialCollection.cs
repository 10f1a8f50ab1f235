namespace EdgeProxy.Tests.Functional.Streaming;

/// <summary>
/// Tests that load the 2-core box heavily (1,000 streams) or measure milliseconds (disconnect
/// propagation) run here: xunit runs a DisableParallelization collection alone, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class StreamingSerialCollection
{
    public const string Name = "Streaming (serial: heavy or timing-sensitive)";
}
