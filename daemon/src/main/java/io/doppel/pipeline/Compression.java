package io.doppel.pipeline;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/** A volume's block compression; the wire carries the codec actually used per frame (raw when a block does not compress). */
public enum Compression
{
    NONE(0, "none"),
    LZ4(1, "lz4"),
    ZSTD(2, "zstd");

    private final int wireId;
    private final String configName;

    Compression(final int wireId, final String configName)
    {
        this.wireId = wireId;
        this.configName = configName;
    }

    public int wireId()
    {
        return wireId;
    }

    public String configName()
    {
        return configName;
    }

    /** Codecs by wire id: {@code values()} copies its array on every call, and this runs once per frame. */
    private static final Compression[] BY_WIRE_ID = {NONE, LZ4, ZSTD};

    /** The codec for a wire id, or null when the id is unknown. */
    public static Compression fromWireId(final int id)
    {
        return id >= 0 && id < BY_WIRE_ID.length ? BY_WIRE_ID[id] : null;
    }

    public static Compression fromConfig(final String name)
    {
        final String wanted = name.toLowerCase(Locale.ROOT);
        for (final Compression c : values())
        {
            if (c.configName.equals(wanted))
            {
                return c;
            }
        }
        throw new IllegalArgumentException("compression=\"" + name + "\": expected one of " + names());
    }

    public static String names()
    {
        return Arrays.stream(values()).map(Compression::configName).collect(Collectors.joining(" | "));
    }
}
