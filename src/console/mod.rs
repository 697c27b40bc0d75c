//! The web console served by `otasim hub`.
