module github.com/cunxiang/cunxiang

go 1.26.8
