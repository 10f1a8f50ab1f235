using EdgeProxy.Configuration;

namespace EdgeProxy.Health;

/// <summary>The health thresholds and timings shared by every backend (from <see cref="GatewaySettings"/>, which holds the defaults).</summary>
internal sealed record HealthPolicy
{
    public required int UnhealthyThreshold { get; init; }

    public required int HealthyThreshold { get; init; }

    public required int PassiveFailureThreshold { get; init; }

    public required TimeSpan EjectionBase { get; init; }

    public required TimeSpan EjectionMax { get; init; }

    public required TimeSpan SlowStart { get; init; }

    public static HealthPolicy From(GatewaySettings s) => new()
    {
        UnhealthyThreshold = s.UnhealthyThreshold,
        HealthyThreshold = s.HealthyThreshold,
        PassiveFailureThreshold = s.PassiveFailureThreshold,
        EjectionBase = s.EjectionBase,
        EjectionMax = s.EjectionMax,
        SlowStart = s.SlowStart,
    };
}

/// <summary>Active health as the contract names it.</summary>
internal enum HealthStatus
{
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}
