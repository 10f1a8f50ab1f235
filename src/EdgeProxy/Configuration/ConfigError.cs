namespace EdgeProxy.Configuration;

/// <summary>One problem found while loading configuration: where it is and what is wrong.</summary>
internal readonly record struct ConfigError(string Path, string Message)
{
    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>Thrown when configuration is invalid; carries every error found, not just the first.</summary>
internal sealed class ConfigException(string source, IReadOnlyList<ConfigError> errors)
    : Exception($"{source}: {errors.Count} error{(errors.Count == 1 ? "" : "s")}" + string.Concat(errors.Select(e => "\n  - " + e)))
{
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}
