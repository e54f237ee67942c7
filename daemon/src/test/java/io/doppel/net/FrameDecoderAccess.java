package io.doppel.net;

import io.netty.buffer.ByteBuf;

import java.util.List;

/** Calls {@link FrameDecoder}'s protected decode step directly, for tests that run it without a channel. */
public final class FrameDecoderAccess
{
    private FrameDecoderAccess()
    {
    }

    public static void decode(final FrameDecoder decoder, final ByteBuf in, final List<Object> out)
    {
        decoder.decode(null, in, out);
    }
}
