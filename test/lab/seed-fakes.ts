// placeholder, replaced once test/fakes exists
