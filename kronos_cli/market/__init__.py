"""Market data as the model sees it: bar arrays, bar files, trading sessions and the time stamps the model embeds."""
