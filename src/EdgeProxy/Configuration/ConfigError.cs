namespace EdgeProxy.Configuration;

/// <summary>One problem found while loading configuration: where it is and what is wrong.</summary>
internal readonly record struct ConfigError(string Path, string Message)
{
    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>Thrown when configuration is invalid; carries every error found, not just the first.</summary>
internal sealed class ConfigException(string source, IReadOnlyList<ConfigError> errors)
    : Exception(Format(source, errors))
{
    public string Source_ { get; } = source;

    public IReadOnlyList<ConfigError> Errors { get; } = errors;

    private static string Format(string source, IReadOnlyList<ConfigError> errors)
    {
        var lines = new System.Text.StringBuilder();
        lines.Append(source).Append(": ").Append(errors.Count).Append(errors.Count == 1 ? " error" : " errors");
        foreach (var e in errors)
        {
            lines.Append("\n  - ").Append(e.Path).Append(": ").Append(e.Message);
        }
        return lines.ToString();
    }
}
