package io.doppel.net;

import io.netty.buffer.ByteBuf;

import java.util.List;

/**
 * Calls {@link FrameDecoder}'s decode step directly, without a channel, for the frame benchmarks: the
 * same code the pipeline runs per frame, minus Netty's own handler plumbing. (Same package as the
 * decoder, in the bench module, because {@code decode} is protected.)
 */
public final class FrameDecoding
{
    private FrameDecoding()
    {
    }

    /** Decodes what {@code in} holds into {@code out}: checked frames as retained slices, reader index on the type. */
    public static void decode(final FrameDecoder decoder, final ByteBuf in, final List<Object> out)
    {
        decoder.decode(null, in, out);
    }
}
