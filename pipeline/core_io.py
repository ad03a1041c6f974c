"""The host's own sources and sinks, registered through the `stylefarm` entry-point group
like any plugin so that `stylefarm plugins` shows where every name comes from."""

from .hookspecs import hookimpl


@hookimpl
def stylefarm_register_sources():
    from .sources import ImageSource, PatternSource
    from .video.sequence import SequenceSource
    from .video.source import VideoSource

    return [ImageSource, PatternSource, VideoSource, SequenceSource]


@hookimpl
def stylefarm_register_sinks():
    from .sinks import ImageSink, SheetSink
    from .video.sink import FramesSink, VideoSink

    return [ImageSink, SheetSink, VideoSink, FramesSink]
